"""Claims that race: however they interleave, no task is claimed twice, and what a
claim returns is what it wrote.

On MariaDB the claim is optimistic (a plain read, then an UPDATE fenced by
each row's attempt; see ``TaskStore._claim_without_returning``), so the
tests that put another claim between its read and its write run there.
"""

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from django.db import connection

from offload.failures import AttemptEnd
from offload.models import TaskRecord
from offload.states import State
from offload.store import TaskStore
from offload.store.connection import open_private
from offload.store.tasks import ClaimedTask
from tests.app import tasks

# A give-back after the task's code started: the attempt stays new (failures.cut_short).
STARTED = AttemptEnd('{"exception_class_path": "x.GivenBack", "traceback": ""}')

mariadb_only = pytest.mark.skipif(
    connection.vendor != "mysql", reason="the optimistic claim is MariaDB's"
)


@pytest.fixture
def stores() -> Iterator[list[TaskStore]]:
    """Two stores on connections of their own, as two workers have."""
    made = [TaskStore("default", connection=open_private("default")) for _ in range(2)]
    yield made
    for store in made:
        if store.connection is not connection:
            store.connection.close()


def _assert_as_written(claimed: list[ClaimedTask], owner: str) -> None:
    """Each claimed task is what its row holds: this owner's lease, its attempt."""
    rows = TaskRecord.objects.in_bulk([task.id for task in claimed])
    for task in claimed:
        row = rows[task.id]
        assert (row.status, row.lease_owner) == (State.RUNNING, owner)
        assert (row.attempt, row.worker_ids) == (task.attempt, task.worker_ids)
        assert row.started_at == task.started_at
        assert row.last_attempted_at == task.last_attempted_at


def test_concurrent_claimers_never_share_a_task(backend):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("an in-memory database has one connection")
    total = 300
    for _ in range(total):
        tasks.noop.enqueue()
    taken: dict[str, list[ClaimedTask]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def claim(name: str) -> None:
        store = TaskStore("default", connection=open_private("default"))
        mine: list[ClaimedTask] = []
        try:
            start.wait()
            while batch := store.claim(name, limit=7, lease_seconds=60):
                mine += batch
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            taken[name] = mine
            store.connection.close()

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    counts = Counter(task.id for mine in taken.values() for task in mine)
    assert len(counts) == total
    assert max(counts.values()) == 1
    for name, mine in taken.items():
        assert {task.attempt for task in mine} <= {1}
        _assert_as_written(mine, name)


def _race_after_first_read(store: TaskStore, race: Callable[[], object]) -> list[int]:
    """Make ``race`` run between ``store``'s first claim read and its UPDATE;
    return the list that gets the row count of each claim read."""
    read = store._fetch
    rounds: list[int] = []

    def read_then_race(sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        rows = read(sql, params)
        if sql.startswith("SELECT id, task_path"):  # the claim's read of due rows
            rounds.append(len(rows))
            if len(rounds) == 1:
                race()
        return rows

    store._fetch = read_then_race  # type: ignore[method-assign]
    return rounds


@mariadb_only
def test_a_claim_takes_the_rest_when_another_won_part_of_what_it_read(backend, stores):
    """Another worker claims 3 of the 10 rows this claim read before its UPDATE:
    the UPDATE takes 7, those are read back, and a second read brings 3 more."""
    ours, theirs = stores
    ids = [int(tasks.noop.enqueue().id) for _ in range(20)]
    raced: list[ClaimedTask] = []
    rounds = _race_after_first_read(
        ours, lambda: raced.extend(theirs.claim("them", limit=3, lease_seconds=60))
    )
    claimed = ours.claim("us", limit=10, lease_seconds=60)
    assert rounds == [10, 3]
    assert [task.id for task in raced] == ids[:3]
    assert [task.id for task in claimed] == ids[3:13]
    _assert_as_written(claimed, "us")
    _assert_as_written(raced, "them")


@mariadb_only
def test_a_claim_that_lost_every_row_it_read_reads_again(backend, stores):
    ours, theirs = stores
    ids = [int(tasks.noop.enqueue().id) for _ in range(8)]
    rounds = _race_after_first_read(ours, lambda: theirs.claim("them", limit=5, lease_seconds=60))
    claimed = ours.claim("us", limit=5, lease_seconds=60)
    assert rounds == [5, 3]  # the second read finds what the other left
    assert [task.id for task in claimed] == ids[5:]
    _assert_as_written(claimed, "us")


@mariadb_only
def test_a_row_that_changed_between_read_and_write_is_not_claimed_as_read(backend, stores):
    """The row another worker claimed and gave back in between is READY again,
    with a new attempt: the claim's fence on the attempt it read leaves it
    alone rather than return stale values, and the next read takes it."""
    ours, theirs = stores
    first = int(tasks.noop.enqueue().id)

    def claim_and_give_back() -> None:
        (other,) = theirs.claim("them", limit=1, lease_seconds=60)
        assert theirs.release(other.id, other.attempt, STARTED)

    rounds = _race_after_first_read(ours, claim_and_give_back)
    claimed = ours.claim("us", limit=1, lease_seconds=60)
    # The first read fills the limit, so the claim reads again after losing it.
    assert rounds == [1, 1]
    assert [task.id for task in claimed] == [first]
    assert claimed[0].attempt == 2
    assert claimed[0].worker_ids == ["them", "us"]
    _assert_as_written(claimed, "us")
