"""The Prometheus view: who may read it, and what it says, parsed with
prometheus_client's own parser, on every database."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from offload.states import State
from tests.admin_factory import make_failed, make_task, make_user, make_worker
from tests.helpers import override_options


@pytest.fixture(autouse=True)
def one_backend(settings):
    # The view reports every offload backend; the test settings' second one
    # keeps its tasks on another database, which these tests do not open.
    settings.TASKS = {"default": settings.TASKS["default"]}


URL = "/offload/metrics"
TOKEN = "s3cret-scrape-token"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted({"backend": "default", **labels}.items())))]


def test_the_metrics_say_what_the_queues_workers_and_failures_are():
    now = timezone.now()
    for _ in range(3):
        make_task(queue_name="emails", available_at=now - timedelta(minutes=2))
    make_task(queue_name="emails", available_at=now + timedelta(hours=1))
    make_task(queue_name="reports", status=State.RUNNING, lease_owner="host:1:a")
    make_task(queue_name="reports", status=State.BLOCKED, concurrency_key="k")
    make_failed(finished_at=now - timedelta(minutes=5))
    make_worker("host:1:a")
    client = Client()
    client.force_login(make_user("ops", perms=("view_taskrecord",)))

    response = client.get(URL)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response.content.decode())
    assert value(found, "offload_queue_ready_tasks", queue="emails") == 4
    assert value(found, "offload_queue_due_tasks", queue="emails") == 3
    assert 110 <= value(found, "offload_queue_oldest_due_age_seconds", queue="emails") <= 600
    assert value(found, "offload_queue_running_tasks", queue="reports") == 1
    assert value(found, "offload_queue_blocked_tasks", queue="reports") == 1
    assert value(found, "offload_queue_blocked_tasks", queue="emails") == 0
    assert value(found, "offload_queue_paused", queue="emails") == 0
    assert value(found, "offload_worker_processes", state="live") == 1
    assert value(found, "offload_failed_tasks_recent", window_seconds="3600") == 1


def test_tasks_waiting_on_upstream_tasks_are_a_gauge_of_their_queue():
    make_task(queue_name="reports", status=State.WAITING, waiting_on=2, workflow_id=1)
    make_task(queue_name="reports", status=State.BLOCKED, concurrency_key="k")
    client = Client()
    client.force_login(make_user("ops", perms=("view_taskrecord",)))
    found = samples(client.get(URL).content.decode())
    assert value(found, "offload_queue_waiting_tasks", queue="reports") == 1
    assert value(found, "offload_queue_blocked_tasks", queue="reports") == 1
    assert value(found, "offload_queue_ready_tasks", queue="reports") == 0


def test_anonymous_and_unprivileged_users_are_refused():
    assert Client().get(URL).status_code == 403
    client = Client()
    client.force_login(make_user("staff-without-permission"))
    refused = client.get(URL)
    assert refused.status_code == 403
    assert refused["WWW-Authenticate"].startswith("Bearer")
    client.force_login(make_user("not-staff", staff=False, perms=("view_taskrecord",)))
    assert client.get(URL).status_code == 403


def test_a_bearer_token_from_the_settings_reads_them_and_a_wrong_one_does_not():
    make_task()
    with override_options(METRICS_TOKEN=TOKEN):
        good = Client(headers={"Authorization": f"Bearer {TOKEN}"}).get(URL)
        wrong = Client(headers={"Authorization": f"Bearer {TOKEN}x"}).get(URL)
        basic = Client(headers={"Authorization": f"Basic {TOKEN}"}).get(URL)
    without = Client(headers={"Authorization": f"Bearer {TOKEN}"}).get(URL)
    assert good.status_code == 200
    assert value(samples(good.content.decode()), "offload_queue_ready_tasks", queue="default") == 1
    assert (wrong.status_code, basic.status_code) == (403, 403)
    assert without.status_code == 403  # no token configured: no token is accepted


def test_only_get_is_answered():
    client = Client()
    client.force_login(make_user("root", superuser=True))
    assert client.post(URL).status_code == 405


@pytest.mark.parametrize("token", ["", "short"])
def test_a_token_must_be_long_enough_to_guess_hard(token):
    from offload.conf import parse_options

    problems = parse_options({"METRICS_TOKEN": token}, {"default"}).problems
    assert (problems != []) == (token == "short"), problems
