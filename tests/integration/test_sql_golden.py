"""The statements the store really executes are the golden ones (tests/sql), on
the database under test: what a reader sees there is what runs."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from django.db import connection

from offload.failures import AttemptEnd
from offload.models import Schedule
from offload.schedules.firing import FIRE_TABLE, Scheduler
from offload.store import QueueFilter
from tests import golden
from tests.app import tasks


@contextmanager
def executed() -> Iterator[list[str]]:
    """Every statement sent on the test's connection inside the block, as sent."""
    seen: list[str] = []

    def record(execute: Callable[..., object], sql: str, *args: object) -> object:
        seen.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(record):
        yield seen


def expected(statement: str, *labels: str) -> list[str]:
    found = golden.read_statements(statement, connection.vendor)
    return [found[label] for label in labels]


def two_statements() -> bool:
    return golden.vendor_named(connection.vendor).claim is None


def test_the_claim_is_the_golden_one(backend):
    store = backend.store
    tasks.noop.enqueue()
    tasks.noop.enqueue()
    with executed() as seen:
        assert len(store.claim(golden.WORKER, limit=golden.LIMIT, lease_seconds=golden.LEASE)) == 2
    with executed() as seen_filtered:
        store.claim(golden.WORKER, queues=golden.ONLY, limit=golden.LIMIT,
                    lease_seconds=golden.LEASE, is_async=False)  # fmt: skip
    if two_statements():
        assert seen == expected("claim", "read (all queues, any kind)", "write (the two rows read)")
        assert seen_filtered == expected("claim", "read (two queues, sync)")
        return
    assert seen == expected("claim", "all queues, any kind")
    assert seen_filtered == expected("claim", "two queues, sync")
    with executed() as seen_async:
        store.claim(golden.WORKER, limit=golden.LIMIT, lease_seconds=golden.LEASE, is_async=True)
    assert seen_async == expected("claim", "async")


def test_the_completion_writes_are_the_golden_ones(backend):
    store = backend.store
    for _ in range(3):
        tasks.noop.enqueue()
    first, second, third = store.claim("w", limit=3, lease_seconds=60)
    with executed() as seen:
        # With the task's concurrency keys from its claim (none), as the worker does.
        assert store.complete(
            first.id, first.attempt, "1", 0.5, keys=first.keys, dependents=first.dependents
        )
    assert seen == expected("complete", "one")
    with executed() as seen:
        # The third row's attempt is not its own: it is left alone (and on
        # MariaDB the rows written are read back).
        done = store.complete_many(
            [(second.id, second.attempt, "2", 0.5), (third.id, 99, "3", 0.25)],
            keys=[],
            dependents=[],
        )
    assert done == {second.id}
    labels = ["batch of two"] + (["batch read-back"] if two_statements() else [])
    assert seen == expected("complete", *labels)


def test_the_rescue_is_the_golden_one(backend):
    store = backend.store
    tasks.noop.enqueue()
    (claimed,) = store.claim("w", limit=1, lease_seconds=-1)  # a lease already expired
    with executed() as seen:
        (found,) = store.expired_leases(golden.LIMIT)
        assert found[:2] == (claimed.id, claimed.attempt)
        # With the keys and dependents the search read, as the rescuer does.
        end = AttemptEnd("{}")
        assert store.attempt_lost(
            claimed.id, claimed.attempt, end, 1.0, expired_only=True, keys=found[4],
            dependents=found[5],
        )  # fmt: skip
    assert seen == expected("rescue", "expired leases", "attempt lost")


def test_the_fire_row_is_the_golden_one(backend):
    Schedule.objects.create(
        name="golden", task_path="tests.app.tasks.noop", interval=60,
        next_fire_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    with executed() as seen:
        (fired,) = Scheduler(backend).tick(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))
    assert fired.task_id is not None
    inserts = [sql for sql in seen if sql.startswith("INSERT INTO") and FIRE_TABLE in sql]
    assert inserts == expected("fire", "fire row")


def test_a_queue_filter_changes_only_the_queue_terms():
    # The golden filter names two queues: the claim gets equality on a list.
    assert golden.ONLY.sql() == (" AND queue_name IN (%s, %s)", ["default", "emails"])
    assert QueueFilter(only=("default",)).sql() == (" AND queue_name = %s", ["default"])


def test_the_prune_batches_are_the_golden_ones(backend):
    from django.utils import timezone

    from offload.models import ScheduleFire, TaskDependency
    from offload.retention import cutoff
    from offload.states import State
    from offload.store.prune import delete_batch, dependency_batch, fire_batch, task_batch
    from tests.integration.test_prune import DAY, row

    store = backend.store
    old = timezone.now() - 10 * DAY
    schedule = Schedule.objects.create(name="golden", task_path="tests.app.tasks.noop", interval=60)
    for minute in range(2):
        row(State.SUCCESSFUL, 10 * DAY)
        row(State.FAILED, 10 * DAY, queue_name=golden.PRUNED.queue,
            task_path=golden.PRUNED.task_path)  # fmt: skip
        at = old.replace(minute=minute)
        ScheduleFire.objects.create(schedule=schedule, fire_at=at, fired_at=at, outcome="enqueued")
        # Links of a waiting task that no longer exists.
        TaskDependency.objects.create(task_id=10**9 + minute, upstream_id=1, position=0)
    before = cutoff(store, DAY)
    batches = {
        "finished tasks": task_batch(State.SUCCESSFUL, before, golden.LIMIT),
        "finished tasks of one queue and task": task_batch(
            State.FAILED, before, golden.LIMIT, golden.PRUNED
        ),
        "fire records": fire_batch(before, golden.LIMIT),
        "workflow links of deleted tasks": dependency_batch(golden.LIMIT),
    }
    for label, batch in batches.items():
        with executed() as seen:
            assert delete_batch(store, batch) == (2, 2)
        if two_statements():
            assert seen == expected("prune", f"read ({label})", f"delete ({label}, two rows read)")
        else:
            assert seen == expected("prune", label)
