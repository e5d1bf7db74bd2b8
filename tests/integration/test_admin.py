"""The admin pages through Django's test client: what an operator sees and does."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from offload.models import TaskRecord
from offload.states import State
from offload.store import TaskStore
from tests.admin_factory import confirm, make_failed, make_task, make_user, make_worker
from tests.app import tasks


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def test_a_failed_task_is_found_understood_and_retried(operator):
    task = make_failed(kwargs={"user": "ann", "api_token": "s3cr3t"})
    listing = operator.get(reverse("admin:offload_failedtask_changelist"))
    assert listing.status_code == 200
    assert f"/admin/offload/failedtask/{task.pk}/change/" in listing.text

    page = operator.get(reverse("admin:offload_failedtask_change", args=[task.pk]))
    assert page.status_code == 200
    for shown in ("ValueError: boom 1", "ValueError: boom 3", "host:2:w", "ann"):
        assert shown in page.text
    assert "s3cr3t" not in page.text
    assert "********" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")

    done = operator.post(reverse("admin:offload_failedtask_operate", args=[task.pk, "retry"]))
    assert done.status_code == 302
    task.refresh_from_db()
    assert task.status == State.READY
    assert len(task.errors) == 3  # the history stays
    assert task.max_attempts == 6  # a fresh budget of three more attempts
    assert task.attempt == 3
    assert task.finished_at is None


def test_cancel_copy_and_delete_from_the_detail_page(operator):
    ready = make_task()
    operator.post(reverse("admin:offload_taskrecord_operate", args=[ready.pk, "cancel"]))
    ready.refresh_from_db()
    assert ready.status == State.CANCELLED
    assert "Cancelled from the admin by root" in ready.errors[-1]["traceback"]

    operator.post(reverse("admin:offload_taskrecord_operate", args=[ready.pk, "copy"]))
    copy = TaskRecord.objects.exclude(pk=ready.pk).get()
    assert (copy.status, copy.args, copy.errors, copy.attempt) == (State.READY, [1, 2], [], 0)

    running = make_task(status=State.RUNNING, attempt=1, lease_owner="w")
    operator.post(reverse("admin:offload_taskrecord_operate", args=[running.pk, "delete"]))
    operator.post(reverse("admin:offload_taskrecord_operate", args=[ready.pk, "delete"]))
    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {copy.pk, running.pk}


def test_actions_apply_to_everything_the_filter_matches(operator):
    failed = [make_failed(queue_name="emails") for _ in range(3)]
    other = make_failed(queue_name="default")
    url = reverse("admin:offload_taskrecord_changelist") + "?queue=emails"
    page = operator.post(
        url,
        {
            "action": "retry_tasks",
            "select_across": "1",
            "index": "0",
            "_selected_action": [failed[0].pk],
        },
    )
    response = confirm(operator, url, page)  # "Select all" asks first
    assert response.status_code == 302
    statuses = dict(TaskRecord.objects.values_list("pk", "status"))
    assert all(statuses[t.pk] == State.READY for t in failed)
    assert statuses[other.pk] == State.FAILED


def test_the_list_never_counts_the_whole_table(operator):
    for _ in range(3):
        make_task()
    with CaptureQueriesContext(connection) as queries:
        # _facets asks Django for a count per filter choice: it must be ignored.
        response = operator.get(reverse("admin:offload_taskrecord_changelist") + "?_facets=1")
    assert response.status_code == 200
    task_queries = [q["sql"] for q in queries if "offload_task" in q["sql"]]
    assert task_queries
    for sql in task_queries:
        # Every read of the task table is LIMITed (the count runs over a LIMITed subquery).
        assert "LIMIT" in sql.upper(), sql
        assert '"args"' not in sql, sql
        assert "`args`" not in sql, sql


def test_the_count_stops_at_the_limit(operator, settings):
    settings.TASKS = {
        **settings.TASKS,
        "default": {**settings.TASKS["default"], "OPTIONS": {"ADMIN_COUNT_LIMIT": 100}},
    }
    template = make_task()
    TaskRecord.objects.bulk_create(
        TaskRecord(
            task_path=template.task_path,
            backend="default",
            available_at=template.available_at,
            enqueued_at=template.enqueued_at,
        )
        for _ in range(100)
    )
    response = operator.get(reverse("admin:offload_taskrecord_changelist"))
    assert "More than 100 tasks match" in response.text


def test_filters_and_search(operator):
    a = make_task(task_path="tests.app.tasks.add", queue_name="emails")
    b = make_task(task_path="tests.app.tasks.noop")
    worker = make_worker()
    c = make_task(status=State.RUNNING, lease_owner=worker.pk, attempt=1)
    url = reverse("admin:offload_taskrecord_changelist")

    def ids(query: str) -> set[int]:
        response = operator.get(url + query)
        assert response.status_code == 200
        return {t.pk for t in response.context["cl"].result_list}

    assert ids("?queue=emails") == {a.pk}
    assert ids("?task=tests.app.tasks.no") == set()
    assert ids("?task=tests.app.tasks.noop") == {b.pk}
    assert ids("?task=tests.app.tasks.no*") == {b.pk}
    assert ids(f"?q={b.pk}") == {b.pk}
    assert ids("?q=tests.app.tasks.add") == {a.pk, c.pk}
    assert ids(f"?worker={worker.pk}") == {c.pk}
    assert ids("?status=RUNNING") == {c.pk}
    assert ids("?enqueued=1h") == {a.pk, b.pk, c.pk}


def test_workers_page_shows_heartbeat_age_and_current_tasks(operator):
    worker = make_worker()
    task = make_task(status=State.RUNNING, lease_owner=worker.pk, attempt=1)
    listing = operator.get(reverse("admin:offload_workerrecord_changelist"))
    assert listing.status_code == 200
    assert "ago" in listing.text
    page = operator.get(reverse("admin:offload_workerrecord_change", args=[worker.pk]))
    assert f"#{task.pk} tests.app.tasks.add" in page.text


def test_queues_page_pauses_and_resumes(operator):
    make_task(queue_name="emails")
    page = operator.get(reverse("admin:offload_queue_changelist"))
    assert page.status_code == 200
    assert 'data-queue="emails"' in page.text
    operator.post(reverse("admin:offload_queue_pause"), {"queue": "emails"})
    page = operator.get(reverse("admin:offload_queue_changelist"))
    assert "Paused" in page.text
    assert "by root" in page.text
    operator.post(reverse("admin:offload_queue_resume"), {"queue": "emails"})
    assert "Paused" not in operator.get(reverse("admin:offload_queue_changelist")).text


def test_dashboard_is_linked_from_the_index_and_serves_bounded_json(operator):
    make_failed()
    finished = make_failed()
    make_task(
        status=State.SUCCESSFUL,
        started_at=finished.started_at,
        last_attempted_at=finished.last_attempted_at,
        finished_at=finished.finished_at,
    )
    index = operator.get(reverse("admin:index"))
    assert reverse("admin:offload_dashboard_changelist") in index.text
    page = operator.get(reverse("admin:offload_dashboard_changelist") + "?refresh=999999")
    assert page.status_code == 200
    assert 'data-refresh="3600"' in page.text
    assert "<script>" not in page.text
    data = operator.get(reverse("admin:offload_dashboard_data") + "?window=year").json()
    assert data["window"] == "hour"
    assert data["counters"]["failed_last_hour"] == 2
    assert data["counters"]["finished_last_hour"] == 3
    assert sum(data["series"]["finished"]) == 3
    assert len(data["series"]["minutes"]) == 61
    assert data["latency"]["run_p50"] is not None
    assert json.dumps(data)  # plain JSON


def test_timings_are_from_the_code_start_and_a_task_not_begun_shows_as_claimed(operator):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    waiting = make_task(status=State.RUNNING, attempt=1, claimed_at=now - timedelta(seconds=3))
    begun = make_task(
        status=State.RUNNING, attempt=1, claimed_at=now - timedelta(seconds=3),
        started_at=now - timedelta(seconds=2), last_attempted_at=now - timedelta(seconds=2),
    )  # fmt: skip
    retried = make_task(
        status=State.RUNNING, attempt=2, claimed_at=now - timedelta(seconds=1),
        started_at=now - timedelta(seconds=9), last_attempted_at=now - timedelta(seconds=8),
    )  # fmt: skip
    running = operator.get(reverse("admin:offload_runningtask_changelist")).text
    assert running.count("(claimed, not started)") == 2
    for task in (waiting, begun, retried):
        page = operator.get(reverse("admin:offload_taskrecord_change", args=[task.pk])).text
        assert "Claimed at" in page
        assert ("(claimed, not started)" in page) == (task is not begun)

    # Enqueued 10 s ago, claimed 6 s ago, its code began 4 s ago and ran 0.5 s.
    done = make_task(
        status=State.SUCCESSFUL, attempt=1, enqueued_at=now - timedelta(seconds=10),
        claimed_at=now - timedelta(seconds=6), started_at=now - timedelta(seconds=4),
        last_attempted_at=now - timedelta(seconds=4), finished_at=now - timedelta(seconds=3.5),
    )  # fmt: skip
    listed = operator.get(reverse("admin:offload_successfultask_changelist")).text
    assert "Waited" in listed
    assert "6.0 s" in listed
    assert "500 ms" in listed
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[done.pk])).text
    assert "6.0 s" in page
    assert "500 ms" in page
    latency = operator.get(reverse("admin:offload_dashboard_data")).json()["latency"]
    assert (latency["wait_p50"], latency["run_p50"]) == (6.0, 0.5)


def test_dashboard_counts_each_tasks_successes_and_failures_apart(operator):
    from django.utils import timezone

    now = timezone.now()
    ended = {"started_at": now, "last_attempted_at": now, "finished_at": now}
    for _ in range(3):
        make_task(task_path="tests.app.tasks.add", status=State.SUCCESSFUL, **ended)
    for _ in range(2):
        make_failed(task_path="tests.app.tasks.add")
    make_task(task_path="tests.app.tasks.add", status=State.CANCELLED, finished_at=now)
    make_failed(task_path="tests.app.tasks.other")
    make_task(task_path="tests.app.tasks.add")  # not finished: not counted
    data = operator.get(reverse("admin:offload_dashboard_data")).json()
    tasks = {row["path"]: row for row in data["tasks"]}
    add = tasks["tests.app.tasks.add"]
    assert (add["finished"], add["succeeded"], add["failed"], add["cancelled"]) == (6, 3, 2, 1)
    other = tasks["tests.app.tasks.other"]
    assert (other["finished"], other["succeeded"], other["failed"]) == (1, 0, 1)
    # Per minute alike: the finished count is the sum of the three endings.
    series = data["series"]
    assert (sum(series["succeeded"]), sum(series["failed"]), sum(series["cancelled"])) == (3, 3, 1)
    assert sum(series["finished"]) == 7
    page = operator.get(reverse("admin:offload_dashboard_changelist"))
    assert "<th>Succeeded</th><th>Failed</th><th>Cancelled</th>" in page.text


def test_dashboard_minutes_from_the_cache_match_the_database(operator):
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    cache.clear()
    now = timezone.now()
    for minutes_ago in (10, 30, 30, 0):
        at = now - timedelta(minutes=minutes_ago, seconds=1)
        make_failed(started_at=at, last_attempted_at=at, finished_at=at)
    url = reverse("admin:offload_dashboard_data")
    cold = operator.get(url).json()
    warm = operator.get(url).json()
    assert cold["series"] == warm["series"]
    assert sum(warm["series"]["failed"]) == 4
    assert max(warm["series"]["failed"]) == 2
    # A closed minute is not read again: a row written into one afterwards
    # (which the database's clock never does) stays unseen until the cache expires.
    at = now - timedelta(minutes=30, seconds=1)
    make_failed(started_at=at, last_attempted_at=at, finished_at=at)
    assert max(operator.get(url).json()["series"]["failed"]) == 2
    cache.clear()
    assert max(operator.get(url).json()["series"]["failed"]) == 3


def test_arguments_of_the_tasks_in_admin_mask_arguments_are_never_shown(operator, settings):
    settings.TASKS = {
        **settings.TASKS,
        "default": {
            **settings.TASKS["default"],
            "OPTIONS": {"ADMIN_MASK_ARGUMENTS": ["tests.app.tasks.*"]},
        },
    }
    hidden = make_task(args=["ann", "plain-words"], kwargs={"note": "visible?"})
    shown = make_task(task_path="other.tasks.job", args=["ann", "postgres://u:hunter2@db/x"])
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[hidden.pk]))
    assert "plain-words" not in page.text
    assert "visible?" not in page.text
    assert "********" in page.text
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[shown.pk]))
    assert "ann" in page.text
    assert "hunter2" not in page.text  # the URL's password, masked on its own


def test_a_unique_tasks_page_shows_its_key_and_scope(operator):
    held = tasks.reindex.unique("reindex-products").enqueue("products")
    plain = make_task()
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[held.id])).text
    assert "Uniqueness" in page
    assert "reindex-products" in page
    assert "active" in page
    TaskStore("default").cancel([int(held.id)], "{}")
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[held.id])).text
    assert "released (the key may be taken by a new task)" in page
    page = operator.get(reverse("admin:offload_taskrecord_change", args=[plain.pk])).text
    assert "Uniqueness" not in page
