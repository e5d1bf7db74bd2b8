"""A task's start is when its code began, not when a worker claimed it.

A worker claims a batch of tasks and runs them as its threads free up, so a
claimed task may wait in the worker's buffer: that wait is not run time.
"""

from datetime import datetime

from django.db import transaction

from offload.admin.stats import dashboard_data
from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import drain, override_options, running_worker, wait_for


def _seconds(later: datetime | None, earlier: datetime | None) -> float:
    assert later is not None
    assert earlier is not None
    return (later - earlier).total_seconds()


def test_a_task_that_waited_in_its_workers_buffer_ran_from_its_code_start(backend):
    # One thread and tasks known to be tiny: the worker claims several at once.
    with running_worker(threads=1, batch_size=10) as running:
        warm = [tasks.noop.enqueue().id for _ in range(5)]
        wait_for(lambda: running.worker.stats.succeeded == len(warm), what="the warm-up")
        # As the warm-up left it on an idle machine (a busy one may time the
        # no-ops slower than the claim horizon, and then claim one at a time).
        running.worker.claims.mean_sync_seconds = 0.001
        with transaction.atomic():  # due together: one claim takes both
            slow = tasks.sleep_then_return.enqueue(1.0, "slow")
            quick = tasks.noop.enqueue()

        # While the slow one runs, the quick one is claimed and has not begun.
        def claimed_and_waiting() -> bool:
            row = TaskRecord.objects.get(pk=quick.id)
            return row.status == State.RUNNING and row.claimed_at is not None

        wait_for(claimed_and_waiting, what="the quick task to be claimed")
        waiting = TaskRecord.objects.get(pk=quick.id)
        assert waiting.started_at is None
        assert waiting.last_attempted_at is None
        wait_for(
            lambda: TaskRecord.objects.filter(pk__in=[slow.id, quick.id], status=State.SUCCESSFUL)
            .count() == 2,
            what="both tasks",
        )  # fmt: skip

    slow_row = TaskRecord.objects.get(pk=slow.id)
    quick_row = TaskRecord.objects.get(pk=quick.id)
    # Claimed together, within a claim's time of each other.
    assert abs(_seconds(quick_row.claimed_at, slow_row.claimed_at)) < 0.2
    assert _seconds(slow_row.finished_at, slow_row.started_at) >= 0.95
    # The quick one waited about a second for the thread, then ran at once.
    assert _seconds(quick_row.started_at, quick_row.claimed_at) >= 0.9
    assert _seconds(quick_row.finished_at, quick_row.started_at) < 0.5
    assert _seconds(quick_row.started_at, slow_row.started_at) >= 0.95  # after the slow one
    assert quick_row.last_attempted_at == quick_row.started_at

    # Django's TaskResult says the same.
    result = backend.get_result(quick.id)
    assert result.started_at == quick_row.started_at
    assert result.last_attempted_at == quick_row.started_at
    assert (result.finished_at - result.started_at).total_seconds() < 0.5

    # So do the dashboard's figures: the wait was the quick task's, not its run.
    noop = {entry["path"]: entry for entry in dashboard_data()["tasks"]}["tests.app.tasks.noop"]
    assert noop["run_p95"] < 0.5
    assert noop["wait_p95"] >= 0.9


def test_a_running_task_shows_its_start_before_it_finishes(backend):
    with override_options(PROGRESS_INTERVAL=0.2), running_worker(threads=1) as running:
        long = tasks.sleep_then_return.enqueue(3.0, "done")

        def start_written() -> bool:
            row = TaskRecord.objects.get(pk=long.id)
            return row.status == State.RUNNING and row.started_at is not None

        wait_for(start_written, timeout=2.0, what="the start of the running task")
        row = TaskRecord.objects.get(pk=long.id)
        assert row.last_attempted_at == row.started_at
        assert 0 <= _seconds(row.started_at, row.claimed_at) < 1.0
        assert backend.get_result(long.id).started_at == row.started_at
        running.worker.stop()
    done = TaskRecord.objects.get(pk=long.id)
    assert done.status == State.SUCCESSFUL
    # The outcome writes the start again, to within the writes' latency.
    assert abs(_seconds(done.started_at, row.started_at)) < 0.2
    assert 2.9 <= _seconds(done.finished_at, done.started_at) < 5


def test_a_retried_task_keeps_its_first_start_and_records_each_attempts(backend):
    result = tasks.fails_with.enqueue("key")  # retried, at once, until its third attempt
    drain(threads=1)
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.status, row.attempt) == (State.FAILED, 3)
    assert row.started_at is not None
    assert row.started_at < row.last_attempted_at <= row.finished_at
    assert row.claimed_at <= row.last_attempted_at


def test_the_start_writes_are_fenced_by_attempt(backend):
    store = backend.store
    first, second = (int(tasks.noop.enqueue().id), int(tasks.noop.enqueue().id))
    claimed = {task.id: task for task in store.claim("w", limit=2, lease_seconds=60)}
    assert set(claimed) == {first, second}
    starts = {(first, claimed[first].attempt): 0.5, (second, claimed[second].attempt + 1): 0.5}
    assert store.write_starts(starts) == 1
    written, unwritten = TaskRecord.objects.get(pk=first), TaskRecord.objects.get(pk=second)
    assert unwritten.started_at is None
    assert written.started_at == written.last_attempted_at
    # Half a second before the write, by the database's clock: after the claim
    # less half a second, and before it plus the time the test took.
    assert -0.5 <= _seconds(written.started_at, written.claimed_at) < 0.5
    # The outcome keeps the first start and moves the attempt's.
    assert store.complete(first, claimed[first].attempt, "null", 0.0)
    done = TaskRecord.objects.get(pk=first)
    assert done.started_at == written.started_at
    assert done.last_attempted_at > written.last_attempted_at
