"""The backend's contract, run unchanged on SQLite, PostgreSQL and MariaDB."""

import datetime
import math
import threading

import pytest
from asgiref.sync import async_to_sync
from django.db import connections, transaction
from django.tasks import TaskResultStatus, task_backends
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.test import override_settings
from django.utils import timezone

from offload.exceptions import InvalidArguments, PayloadTooLarge
from tests.app import tasks
from tests.app.models import Run
from tests.helpers import drain, override_options, row_count, running_worker, wait_for


def test_enqueue_returns_a_ready_result(backend):
    before = timezone.now()
    result = tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.backend == "default"
    assert result.args == [2, 3]
    assert result.kwargs == {}
    assert result.errors == []
    assert result.worker_ids == []
    assert result.started_at is None
    assert result.finished_at is None
    assert result.last_attempted_at is None
    assert result.enqueued_at is not None
    assert timezone.is_aware(result.enqueued_at)
    # The database's clock, which on this machine agrees with the host's.
    assert abs((result.enqueued_at - before).total_seconds()) < 5
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_get_result_round_trips_every_field(backend):
    enqueued = tasks.echo.using(priority=7, queue_name="reports").enqueue(
        1, "two", [3.5, None], flag=True, nested={"a": {"b": ["c"]}}
    )
    fetched = backend.get_result(enqueued.id)
    assert fetched.id == enqueued.id
    assert fetched.status == TaskResultStatus.READY
    assert fetched.task.func is tasks.echo.func
    assert fetched.task.priority == 7
    assert fetched.task.queue_name == "reports"
    assert fetched.args == [1, "two", [3.5, None]]
    assert fetched.kwargs == {"flag": True, "nested": {"a": {"b": ["c"]}}}
    assert fetched.enqueued_at == enqueued.enqueued_at
    # Through the Task API as well.
    assert tasks.echo.get_result(enqueued.id).id == enqueued.id

    drain()
    done = tasks.echo.get_result(enqueued.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == {
        "args": [1, "two", [3.5, None]],
        "kwargs": {"flag": True, "nested": {"a": {"b": ["c"]}}},
    }
    assert done.enqueued_at <= done.started_at <= done.finished_at
    assert done.last_attempted_at == done.started_at
    assert len(done.worker_ids) == 1
    assert done.attempts == 1
    assert done.errors == []
    assert done.is_finished


def test_refresh_updates_a_held_result():
    result = tasks.add.enqueue(20, 22)
    drain()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


def test_failure_keeps_the_error_and_traceback():
    result = tasks.fail.enqueue("it broke")
    stats = drain()
    assert (stats.succeeded, stats.failed) == (0, 1)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.exception_class is ValueError
    assert "ValueError: it broke" in error.traceback
    assert "tests/app/tasks.py" in error.traceback
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_a_return_value_that_is_not_json_fails_clearly():
    result = tasks.return_non_json.enqueue()
    drain()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert "the return value is of type set" in result.errors[0].traceback


def test_priority_then_run_after_then_id_order(backend):
    now = timezone.now()
    low = tasks.noop.using(priority=-5).enqueue()
    high = tasks.noop.using(priority=50).enqueue()
    mid_first = tasks.noop.enqueue()
    mid_second = tasks.noop.enqueue()
    mid_older = tasks.noop.using(run_after=now - datetime.timedelta(minutes=5)).enqueue()
    order = []
    while claimed := backend.store.claim("probe", limit=1, lease_seconds=60):
        order.append(str(claimed[0].id))
    assert order == [high.id, mid_older.id, mid_first.id, mid_second.id, low.id]


def test_a_batch_claim_comes_back_in_claim_order(backend):
    ids = [tasks.noop.using(priority=p).enqueue().id for p in (1, 3, 2, 3)]
    claimed = backend.store.claim("probe", limit=10, lease_seconds=60)
    assert [str(c.id) for c in claimed] == [ids[1], ids[3], ids[2], ids[0]]
    assert all(c.attempt == 1 for c in claimed)
    assert all(c.worker_ids == ["probe"] for c in claimed)


def test_run_after_holds_a_task_until_due(backend):
    later = tasks.add.using(run_after=timezone.now() + datetime.timedelta(hours=1)).enqueue(1, 1)
    due = tasks.add.using(run_after=timezone.now() - datetime.timedelta(seconds=1)).enqueue(2, 2)
    assert drain().processed == 1
    assert backend.get_result(later.id).status == TaskResultStatus.READY
    assert backend.get_result(due.id).return_value == 4
    fetched = backend.get_result(later.id)
    assert fetched.task.run_after == later.task.run_after


def test_run_after_just_ahead_is_picked_up_once_due(backend):
    soon = tasks.add.using(run_after=timezone.now() + datetime.timedelta(seconds=0.5)).enqueue(3, 4)
    assert drain().processed == 0
    with running_worker():  # a long-running worker, polling every 0.05 s
        wait_for(
            lambda: backend.get_result(soon.id).status == TaskResultStatus.SUCCESSFUL,
            timeout=10,
            what="the deferred task to run",
        )
    assert backend.get_result(soon.id).return_value == 7


def test_queue_selection(backend):
    email = tasks.send_email.enqueue("a@example.com")
    default = tasks.noop.enqueue()
    report = tasks.noop.using(queue_name="reports").enqueue()
    assert drain(queues=["emails"]).processed == 1
    assert backend.get_result(email.id).return_value == "sent to a@example.com"
    assert backend.get_result(default.id).status == TaskResultStatus.READY
    assert drain(queues=["reports", "default"]).processed == 2
    assert backend.get_result(report.id).status == TaskResultStatus.SUCCESSFUL


def test_async_task_runs():
    result = tasks.async_add.enqueue(5, 6)
    drain()
    result.refresh()
    assert result.return_value == 11


def test_aenqueue_and_aget_result(backend):
    result = async_to_sync(tasks.add.aenqueue)(1, 2)
    assert async_to_sync(backend.aget_result)(result.id).status == TaskResultStatus.READY
    drain()
    assert async_to_sync(tasks.add.aget_result)(result.id).return_value == 3


def test_context_sees_the_running_attempt():
    result = tasks.with_context.enqueue("ctx")
    drain()
    result.refresh()
    value = result.return_value
    assert value["label"] == "ctx"
    assert value["attempt"] == 1
    assert value["id"] == result.id
    assert value["status"] == "RUNNING"
    assert value["worker_ids"] == result.worker_ids


def test_unknown_results_do_not_exist(backend):
    for bad in ("999999999", "not-a-number", "", "1.5"):
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(bad)


def test_signals_are_sent_and_finished_sees_the_stored_state(backend):
    seen = []

    def on_enqueued(sender, task_result, **kwargs):
        seen.append((task_result.id, "enqueued", task_result.status))

    def on_started(sender, task_result, **kwargs):
        seen.append((task_result.id, "started", task_result.status))

    def on_finished(sender, task_result, **kwargs):
        stored = backend.get_result(task_result.id)
        seen.append((task_result.id, "finished", task_result.status, stored.status))

    task_enqueued.connect(on_enqueued)
    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        added = tasks.add.enqueue(1, 1)
        failed = tasks.fail.enqueue("x")
        drain()
    finally:
        task_enqueued.disconnect(on_enqueued)
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
    # Each task's signals in order, and task_finished only once the outcome is
    # stored. Across tasks no order is promised: a success is written behind
    # its thread (OPTIONS["WRITE_BEHIND"]), so the next task may start first.
    assert [event[1:] for event in seen if event[0] == added.id] == [
        ("enqueued", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.SUCCESSFUL, TaskResultStatus.SUCCESSFUL),
    ]
    assert [event[1:] for event in seen if event[0] == failed.id] == [
        ("enqueued", TaskResultStatus.READY),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.FAILED, TaskResultStatus.FAILED),
    ]
    assert len(seen) == 6


def test_without_write_behind_each_success_is_announced_before_the_next_task(backend):
    """WRITE_BEHIND = 0: the thread waits for each write, so signals come task by task."""
    seen = []

    def on_started(sender, task_result, **kwargs):
        seen.append(("started", task_result.id))

    def on_finished(sender, task_result, **kwargs):
        seen.append(("finished", task_result.id))

    # Enough tiny tasks for the worker to claim them in batches.
    results = [tasks.add.enqueue(n, n) for n in range(30)]
    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        with override_options(WRITE_BEHIND=0):
            drain()
    finally:
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
    assert seen == [(event, r.id) for r in results for event in ("started", "finished")]


# -- transactions ------------------------------------------------------------------


def test_rolled_back_enqueue_leaves_nothing():
    inside = []

    def failing_request():
        with transaction.atomic():
            tasks.add.enqueue(1, 2)
            inside.append(row_count())
            raise RuntimeError("request failed")

    with pytest.raises(RuntimeError):
        failing_request()
    assert inside == [1]
    assert row_count() == 0
    assert drain().processed == 0


def test_no_other_connection_sees_a_task_before_commit(backend):
    seen_before_commit = []

    def look():
        try:
            from offload.models import TaskRecord

            seen_before_commit.append(TaskRecord.objects.count())
            if connections["default"].vendor != "sqlite":
                # SQLite's writer holds the file's write lock until commit;
                # elsewhere a concurrent claim must come back empty.
                claimed = backend.store.claim("other", limit=10, lease_seconds=60)
                seen_before_commit.append(len(claimed))
        finally:
            connections.close_all()

    with transaction.atomic():
        tasks.add.enqueue(1, 2)
        thread = threading.Thread(target=look)
        thread.start()
        thread.join(timeout=30)
    assert set(seen_before_commit) == {0}
    assert drain().processed == 1


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "path"),
    [
        ([timezone.now()], {}, "args[0]"),
        ([], {"when": {"at": datetime.date(2026, 1, 1)}}, 'kwargs["when"]["at"]'),
        ([{1, 2}], {}, "args[0]"),
        ([math.nan], {}, "args[0]"),
        ([], {"limit": math.inf}, 'kwargs["limit"]'),
    ],
)
def test_non_json_arguments_are_refused_and_nothing_is_written(args, kwargs, path):
    with pytest.raises(InvalidTask) as caught:
        tasks.echo.enqueue(*args, **kwargs)
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, InvalidArguments)
    assert path in str(caught.value)
    assert row_count() == 0


def test_a_model_instance_is_refused():
    run = Run.objects.create(marker="m", pid=1)
    with pytest.raises(TypeError, match=r"args\[0\] is of type tests.app.models.Run"):
        tasks.echo.enqueue(run)
    assert row_count() == 0


def test_oversized_payloads_are_refused():
    limited = {
        "default": {
            "BACKEND": "offload.backend.DatabaseBackend",
            "QUEUES": ["default", "emails", "reports"],
            "OPTIONS": {"MAX_PAYLOAD_BYTES": 1000},
        }
    }
    with override_settings(TASKS=limited):
        tasks.echo.enqueue("x" * 900)
        with pytest.raises(PayloadTooLarge, match="over the limit of 1,000 bytes"):
            tasks.echo.enqueue("x" * 1001)
        assert row_count() == 1


def test_unknown_queue_is_refused():
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        tasks.noop.using(queue_name="nope").enqueue()
    assert row_count() == 0


def test_misconfigured_backend_refuses_to_enqueue():
    bad = {"default": {"BACKEND": "offload.backend.DatabaseBackend", "OPTIONS": {"DATABSE": "x"}}}
    with override_settings(TASKS=bad), pytest.raises(InvalidTaskBackend, match="'DATABASE'"):
        task_backends["default"].enqueue(tasks.noop, [], {})
    assert row_count() == 0
