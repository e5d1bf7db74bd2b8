"""Tasks waiting on a concurrency limit, as an operator sees them: the task's
page, the dashboard and ``offload status``."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from tests.admin_factory import make_task, make_user
from tests.app import tasks
from tests.helpers import run_offload


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def test_a_blocked_tasks_page_shows_its_key_limit_and_holders(operator):
    calls = [tasks.call_partner.enqueue(n) for n in range(3)]
    plain = make_task()
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[calls[2].id])).text
    assert "Concurrency limit" in page
    assert "partner-api" in page
    assert "2 of 2 (it waits for one of them to end)" in page
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[calls[0].id])).text
    assert "partner-api" in page
    assert "it waits" not in page  # it holds the key, it does not wait
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[plain.pk])).text
    assert "Concurrency limit" not in page


def test_the_dashboard_counts_the_tasks_waiting_on_a_limit(operator):
    for n in range(5):
        tasks.call_partner.enqueue(n)
    counters = operator.get(reverse("admin:offload_dashboard_data")).json()["counters"]
    assert (counters["ready"], counters["blocked"], counters["blocked_capped"]) == (2, 3, False)
    assert "Waiting on a limit" in operator.get(reverse("admin:offload_dashboard_changelist")).text


def test_status_counts_the_tasks_waiting_on_a_limit():
    code, text = run_offload("status", "--json")
    assert code == 0
    assert json.loads(text)["blocked"] == 0
    assert "concurrency limit" not in run_offload("status")[1]
    for n in range(4):
        tasks.call_partner.enqueue(n)
    data = json.loads(run_offload("status", "--json")[1])
    assert data["blocked"] == 2
    (queue,) = [q for q in data["queues"] if q["name"] == "default"]
    assert (queue["ready"], queue["blocked"]) == (2, 2)
    assert "Waiting on a concurrency or rate limit: 2 (default 2)" in run_offload("status")[1]
