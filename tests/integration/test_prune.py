"""Retention: the elected pruner and the batches it runs delete finished rows past
their retention, and nothing else, while workers claim beside them."""

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from offload.conf import Options, parse_options
from offload.models import Lease, Schedule, ScheduleFire, TaskRecord
from offload.retention import PruneRun, Rule, cutoff
from offload.states import State
from offload.store import TaskStore
from offload.store.prune import PruneFilter, delete_read, preview, task_batch
from offload.worker.pruner import LEASE_NAME, Pruner
from tests.app import tasks
from tests.helpers import running_worker

DAY = timedelta(days=1)


def options(**raw: Any) -> Options:
    found = parse_options(raw, {"default"})
    assert not found.problems, found.problems
    return found


def row(status: State, age: timedelta | None, **fields: Any) -> int:
    """A task row in ``status`` that finished ``age`` ago (None: not finished)."""
    now = timezone.now()
    fields.setdefault("queue_name", "default")
    fields.setdefault("task_path", "tests.app.tasks.noop")
    record = TaskRecord.objects.create(
        backend="default",
        status=status,
        available_at=fields.pop("available_at", now - 100 * DAY),
        enqueued_at=now - 100 * DAY,
        finished_at=None if age is None else now - age,
        **fields,
    )
    return record.id


def left() -> set[int]:
    return set(TaskRecord.objects.values_list("id", flat=True))


def test_the_pruner_never_deletes_a_task_that_is_not_finished_however_old():
    now = timezone.now()
    kept = {
        row(State.READY, None),
        row(State.READY, None, available_at=now + DAY, run_after=now + DAY),  # scheduled
        row(State.RUNNING, None, started_at=now - 99 * DAY, attempt=1, lease_owner="w"),
        # A stray finished_at on an unfinished row (no write leaves one): the
        # status alone keeps it.
        row(State.READY, 400 * DAY),
        row(State.RUNNING, 400 * DAY, attempt=1),
    }
    gone = {row(State.SUCCESSFUL, 400 * DAY), row(State.FAILED, 400 * DAY)}
    gone.add(row(State.CANCELLED, 400 * DAY))
    pruner = Pruner("default", options(), "host-a:1")
    assert pruner.turn() == 3
    assert left() == kept
    assert pruner.turn() == 0  # nothing else, however often it runs
    assert left() == kept


def test_each_status_keeps_its_own_retention():
    config = options(RETAIN_SUCCESSFUL=DAY, RETAIN_FAILED=10 * 86400, RETAIN_CANCELLED=None)
    kept = {
        row(State.SUCCESSFUL, timedelta(hours=23)),
        row(State.FAILED, 9 * DAY),
        row(State.CANCELLED, 1000 * DAY),  # None: kept forever
    }
    gone = {row(State.SUCCESSFUL, DAY + timedelta(minutes=5)), row(State.FAILED, 11 * DAY)}
    pruner = Pruner("default", config, "host-a:1")
    assert pruner.turn() == len(gone)
    assert left() == kept
    assert pruner.deleted == 2


def test_the_defaults_are_a_week_a_month_and_a_week():
    kept = {
        row(State.SUCCESSFUL, 6 * DAY),
        row(State.FAILED, 29 * DAY),
        row(State.CANCELLED, 6 * DAY),
    }
    row(State.SUCCESSFUL, 8 * DAY)
    row(State.FAILED, 31 * DAY)
    row(State.CANCELLED, 8 * DAY)
    assert Pruner("default", options(), "host-a:1").turn() == 3
    assert left() == kept


def test_batches_delete_the_oldest_first_and_go_on_until_none_is_left():
    ids = [row(State.SUCCESSFUL, (100 - n) * DAY) for n in range(10)]  # oldest first
    store = TaskStore("default")
    seen: list[int] = []
    run = PruneRun(store, batch_size=3, on_batch=lambda label, n: seen.append(n))
    run.tasks(Rule(State.SUCCESSFUL, 95 * DAY + timedelta(hours=1)))
    # Finished 100..96 days ago: five rows, in batches of 3 then 2.
    assert seen == [3, 2]
    assert left() == set(ids[5:])
    assert run.complete
    assert run.deleted == {"SUCCESSFUL": 5}


def test_the_rate_cap_paces_the_batches():
    for _ in range(30):
        row(State.SUCCESSFUL, 10 * DAY)
    run = PruneRun(TaskStore("default"), batch_size=10, rate=20)
    begun = time.monotonic()
    assert run.tasks(Rule(State.SUCCESSFUL, DAY)) == 30
    # 30 rows at 20 a second: the fourth pick (which finds none) waits until 1.5 s.
    assert time.monotonic() - begun >= 1.4
    assert left() == set()


def test_a_stop_ends_the_run_between_batches():
    for _ in range(5):
        row(State.SUCCESSFUL, 10 * DAY)
    stop = threading.Event()
    run = PruneRun(TaskStore("default"), batch_size=2, stop=stop)
    run.on_batch = lambda label, n: stop.set()
    assert run.tasks(Rule(State.SUCCESSFUL, DAY)) == 2
    assert not run.complete
    assert len(left()) == 3


def test_the_delete_tests_each_row_again():
    """A task retried by an operator between the pick and the delete stays:
    MariaDB's two statements, run here on every engine."""
    first, second = row(State.FAILED, 10 * DAY), row(State.FAILED, 10 * DAY)
    store = TaskStore("default")
    batch = task_batch(State.FAILED, cutoff(store, DAY), 10)
    with store.connection.cursor() as cursor:
        cursor.execute(batch.pick, batch.pick_params)
        ids = [r[0] for r in cursor.fetchall()]
        assert sorted(ids) == [first, second]
        TaskRecord.objects.filter(id=second).update(status=State.READY)  # retried
        cursor.execute(*delete_read(batch, ids))
        assert cursor.rowcount == 1
    assert left() == {second}


def test_only_finished_statuses_make_a_batch():
    with pytest.raises(ValueError, match="Only finished tasks are pruned"):
        task_batch(State.READY, "2000-01-01", 10)
    with pytest.raises(ValueError, match="Only finished tasks are pruned"):
        preview(TaskStore("default"), State.RUNNING, "2000-01-01")


def test_a_filter_narrows_to_one_queue_and_task():
    mine = row(State.SUCCESSFUL, 10 * DAY, queue_name="emails", task_path="tests.app.tasks.add")
    others = {
        row(State.SUCCESSFUL, 10 * DAY, queue_name="emails"),
        row(State.SUCCESSFUL, 10 * DAY, task_path="tests.app.tasks.add"),
    }
    where = PruneFilter(queue="emails", task_path="tests.app.tasks.add")
    store = TaskStore("default")
    found = preview(store, State.SUCCESSFUL, cutoff(store, DAY), where)
    assert found.count == 1
    assert PruneRun(store, batch_size=10).tasks(Rule(State.SUCCESSFUL, DAY), where) == 1
    assert mine not in left()
    assert left() == others


def test_fire_records_are_pruned_past_their_retention():
    now = timezone.now()
    schedule = Schedule.objects.create(
        name="s", task_path="tests.app.tasks.noop", interval=60, next_fire_at=now
    )
    for days in (40, 31, 29, 1):
        ScheduleFire.objects.create(
            schedule=schedule, fire_at=now - days * DAY, fired_at=now - days * DAY,
            outcome=ScheduleFire.Outcome.ENQUEUED,
        )  # fmt: skip
    assert Pruner("default", options(), "host-a:1").turn() == 2
    assert ScheduleFire.objects.count() == 2
    assert Pruner("default", options(RETAIN_SCHEDULE_FIRES=None), "host-a:1").turn() == 0


def test_a_fire_record_stays_while_its_schedule_has_not_moved_past_it():
    """The record is what stops a tick from firing twice: a schedule whose
    next_fire_at is still at (or before) that tick may try it again."""
    now = timezone.now()
    stuck = Schedule.objects.create(
        name="stuck", task_path="tests.app.tasks.noop", interval=60, next_fire_at=now - 41 * DAY
    )
    moved = Schedule.objects.create(
        name="moved", task_path="tests.app.tasks.noop", interval=60, next_fire_at=now
    )
    # More old records of the stuck schedule than a batch holds, lowest ids first.
    for schedule, n in [(stuck, n) for n in range(5)] + [(moved, 0)]:
        at = now - 40 * DAY + timedelta(minutes=n)
        ScheduleFire.objects.create(schedule=schedule, fire_at=at, fired_at=at, outcome="enqueued")
    run = PruneRun(TaskStore("default"), batch_size=2)
    assert run.fires(30 * DAY) == 1
    assert run.complete
    assert list(ScheduleFire.objects.values_list("schedule__name", flat=True)) == ["stuck"] * 5


def test_only_the_holder_of_the_pruner_role_prunes():
    first = Pruner("default", options(), "host-a:1")
    second = Pruner("default", options(), "host-b:1")
    assert first.turn() == 0
    assert Lease.objects.get(name=LEASE_NAME).owner == "host-a:1"
    row(State.SUCCESSFUL, 10 * DAY)
    assert second.turn() == 0
    assert len(left()) == 1
    assert first.turn() == 1
    # The holder hands it back when it stops; the other takes it at its next turn.
    first.start()
    first.stop()
    assert not Lease.objects.filter(name=LEASE_NAME).exists()
    row(State.SUCCESSFUL, 10 * DAY)
    assert second.turn() == 1


def test_pruning_while_a_worker_drains_loses_nothing():
    old = {row(State.SUCCESSFUL, 10 * DAY) for _ in range(3000)}
    results = [tasks.add.enqueue(n, 1) for n in range(300)]
    errors: list[BaseException] = []
    deleted: list[int] = []
    during: list[int] = []

    def prune() -> None:
        try:
            run = PruneRun(TaskStore("default"), batch_size=50)
            run.on_batch = lambda label, n: during.append(done_now())
            deleted.append(run.tasks(Rule(State.SUCCESSFUL, DAY)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def done_now() -> int:
        return TaskRecord.objects.filter(status=State.SUCCESSFUL, finished_at__gt=cut).count()

    cut = timezone.now() - timedelta(hours=1)
    pruner = threading.Thread(target=prune)
    with running_worker(burst=True, threads=2) as running:
        pruner.start()
        pruner.join(timeout=120)
        # The burst run ends once every task is done: on a slow machine the
        # pruner may finish first, and stopping the worker then would leave
        # tasks unrun (CI saw "Task has not finished yet").
        running.thread.join(timeout=120)
    assert not errors, errors
    assert deleted == [len(old)]
    assert not old & left()
    for result in results:
        result.refresh()
        assert result.return_value == result.args[0] + 1
    assert TaskRecord.objects.count() == len(results)
    # The worker finished tasks between the pruner's batches: they ran together.
    assert len(set(during)) > 1, during
