"""Two offload backends on two databases ("default" on default, "separate" on
queue): ``offload status``, the Prometheus view, the admin's dashboard and
queues page show each, labelled by its alias, on every database."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from offload.models import Queue
from offload.store import TaskStore, operations
from tests.admin_factory import make_user
from tests.app import tasks
from tests.helpers import run_offload

# On each test, not the module: the suite's own mark on every test would win.
BOTH_DATABASES = pytest.mark.django_db(transaction=True, databases=["default", "queue"])


@pytest.fixture
def enqueued() -> None:
    tasks.add.enqueue(1, 1)
    tasks.send_email.enqueue("ada@example.com")
    for i in range(3):
        tasks.add.using(backend="separate").enqueue(i, i)


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


@BOTH_DATABASES
def test_status_of_several_backends_in_one_object(enqueued):
    code, text = run_offload("status", "--backend", "default,separate", "--json")
    assert code == 0
    found = json.loads(text)
    assert found["version"] == 1
    shown = {b["backend"]: b for b in found["backends"]}
    assert [b["backend"] for b in found["backends"]] == ["default", "separate"]
    assert shown["default"]["database"] == "default"
    assert shown["separate"]["database"] == "queue"
    ready = {alias: {q["name"]: q["ready"] for q in b["queues"]} for alias, b in shown.items()}
    assert ready["default"]["default"] == 1
    assert ready["default"]["emails"] == 1
    assert ready["separate"] == {"default": 3}
    # --all-backends is every offload alias, in the setting's order.
    every = json.loads(run_offload("status", "--all-backends", "--json")[1])
    assert [b["backend"] for b in every["backends"]] == ["default", "separate"]


@BOTH_DATABASES
def test_status_text_has_a_section_per_backend(enqueued):
    code, text = run_offload("status", "--all-backends")
    assert code == 0
    assert "offload status: backend 'default', database 'default'" in text
    assert "offload status: backend 'separate', database 'queue'" in text
    # One backend alone keeps its shape.
    alone = json.loads(run_offload("status", "--backend", "separate", "--json")[1])
    assert alone["backend"] == "separate"
    assert "backends" not in alone


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("status", "--backend", "default,nope"), "--backend 'nope': no such backend"),
        (("status", "--all-backends", "--backend", "separate"), "one or the other"),
        (("health", "--backend", "default,separate"), "one probe per alias"),
    ],
)
@BOTH_DATABASES
def test_several_backends_usage_errors(argv, message):
    with pytest.raises(CommandError, match=message) as caught:
        call_command("offload", *argv, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == 2


@BOTH_DATABASES
def test_the_prometheus_view_has_each_family_once_with_both_backends(enqueued, operator):
    response = operator.get("/offload/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    # Prometheus refuses a second HELP line for one family.
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(set(helps)), helps
    ready = {
        sample.labels["backend"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "offload_queue_ready_tasks" and sample.labels["queue"] == "default"
    }
    assert ready == {"default": 1, "separate": 3}


@BOTH_DATABASES
def test_the_dashboard_shows_the_backend_chosen(enqueued, operator):
    url = reverse("admin:offload_dashboard_data")
    first = operator.get(url).json()
    assert (first["backend"], first["database"]) == ("default", "default")
    assert first["counters"]["ready"] == 2
    second = operator.get(url + "?backend=separate").json()
    assert (second["backend"], second["database"]) == ("separate", "queue")
    assert second["counters"]["ready"] == 3
    assert [q["name"] for q in second["queues"]] == ["default"]

    page = operator.get(reverse("admin:offload_dashboard_changelist") + "?backend=separate")
    assert page.status_code == 200
    assert 'id="offload-backends"' in page.text
    assert "showing <strong>separate</strong> (database queue)" in page.text
    assert "?window=hour&amp;refresh=" in page.text
    assert "backend=separate" in page.text  # the data URL and the window links keep it
    refused = operator.get(url + "?backend=nope")
    assert refused.status_code == 400
    assert "No offload backend 'nope'" in refused.text


@BOTH_DATABASES
def test_the_queues_page_shows_and_pauses_the_backend_chosen(enqueued, operator):
    url = reverse("admin:offload_queue_changelist")
    page = operator.get(url + "?backend=separate")
    assert page.status_code == 200
    assert "showing <strong>separate</strong> (database queue)" in page.text
    assert 'data-queue="default"' in page.text
    assert 'data-queue="emails"' not in page.text  # a queue of the default backend's only
    assert '<input type="hidden" name="backend" value="separate">' in page.text

    done = operator.post(reverse("admin:offload_queue_pause"), {"queue": "default",
                                                                "backend": "separate"})  # fmt: skip
    assert done.status_code == 302
    assert done["Location"] == url + "?backend=separate"
    assert Queue.objects.using("queue").filter(name="default", paused_at__isnull=False).exists()
    assert not Queue.objects.using("default").exists()
    assert operations.paused_queues(TaskStore("queue")).keys() == {"default"}
    assert "Paused" in operator.get(url + "?backend=separate").text
    assert "Paused" not in operator.get(url).text

    refused = operator.post(reverse("admin:offload_queue_pause"), {"queue": "x", "backend": "nope"})
    assert refused.status_code == 400


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--backend", "default,nope"), r"--backend 'nope': no such backend in TASKS \(there"),
        (("--backend", "default,"), "an empty alias"),
        (("--all-backends", "--backend", "default"), "one or the other"),
    ],
)
@BOTH_DATABASES
def test_a_worker_of_several_backends_refuses_a_bad_choice(argv, message):
    with pytest.raises(CommandError, match=message):
        call_command("offload", "worker", "--burst", *argv, stdout=io.StringIO())
