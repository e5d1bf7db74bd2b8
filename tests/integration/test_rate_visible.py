"""Tasks waiting on a rate limit, as an operator sees them: the task's page,
the dashboard and ``offload status``."""

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


def test_a_rate_limited_tasks_page_shows_its_key_and_rate(operator):
    calls = [tasks.rated_call.enqueue(n) for n in range(3)]
    plain = make_task()
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[calls[2].id])).text
    assert "Rate limit" in page
    assert "partner-rate" in page
    assert "at most 2 start(s) per 60 s" in page
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[plain.pk])).text
    assert "Rate limit" not in page


def test_the_dashboard_and_status_count_the_tasks_waiting_on_a_rate(operator):
    for n in range(5):
        tasks.rated_call.enqueue(n)
    counters = operator.get(reverse("admin:offload_dashboard_data")).json()["counters"]
    assert (counters["ready"], counters["blocked"]) == (2, 3)
    data = json.loads(run_offload("status", "--json")[1])
    assert data["blocked"] == 3
    assert "Waiting on a concurrency or rate limit: 3 (default 3)" in run_offload("status")[1]
