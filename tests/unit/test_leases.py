"""Cancel requests and kill deadlines, as the heartbeat hands them over, and
when the starts of running tasks are due for writing."""

import time

from offload.conf import Options
from offload.store import ALL_QUEUES, QueueFilter, TaskStore
from offload.worker import protocol
from offload.worker.leases import Leases, Registration, queue_label
from tests.unit.worker_parts import claimed


def _leases(running: list, told: list[bytes]) -> Leases:
    registration = Registration("w1", "w1", 1, "default", "*", 1)
    leases = Leases(registration, Options(cancel_grace_seconds=10), told.append, lambda: running)
    leases.next_heartbeat = float("inf")  # no heartbeat due: no database needed
    return leases


def test_a_cancel_tells_the_task_and_kills_it_after_the_grace():
    # The clock readings passed in lie before the real monotonic clock, so the
    # start the task records (on the real clock) is never due to be written:
    # no database is needed, however long the machine has been up.
    base = time.monotonic() - 500
    task = claimed(7, attempt=2)
    told: list[bytes] = []
    leases = _leases([task], told)
    event = leases.started(task)
    leases.cancel_requested(7, kill_at=base + 100)
    assert event.is_set()
    assert leases.next_due() == base + 100
    store = TaskStore("default")
    assert leases.keep_alive(store, now=base + 99) == 0
    assert told == []
    leases.keep_alive(store, now=base + 100)
    assert told == [protocol.task_line("kill", 7, 2, 0.0)]
    leases.keep_alive(store, now=base + 200)
    assert len(told) == 1  # killed once
    leases.ended(task)
    assert leases.next_due() == float("inf")


def test_a_task_cancelled_before_it_starts_ends_at_once_and_is_never_killed():
    task = claimed(8)
    leases = _leases([], [])
    leases.cancel_requested(8, kill_at=1.0)
    assert leases.started(task).is_set()  # it sees the request before it runs
    assert leases.cancel_deadlines == {}


def test_held_tasks_are_tracked_by_attempt():
    leases = _leases([], [])
    leases.hold(claimed(1, attempt=3))
    assert leases.held == {1: 3}
    leases.drop(1)
    leases.drop(1)  # twice is harmless
    assert leases.held == {}


def test_a_start_is_due_for_writing_once_it_has_run_the_interval():
    leases = _leases([], [])  # PROGRESS_INTERVAL 1s, no heartbeat due
    waiting = claimed(1)
    leases.hold(waiting)
    # Held and not begun: the dispatcher looks within the interval, as the
    # task may begin while it sleeps.
    before = time.monotonic()
    assert before < leases.next_due() <= time.monotonic() + 1.0
    leases.started(waiting, begun=50.0)
    assert leases.next_due() == 51.0
    assert leases.keep_alive(TaskStore("default"), now=50.5) == 0  # not due: no database
    leases.ended(waiting)
    leases.drop(waiting.id)
    assert leases.next_due() == float("inf")


def test_the_queue_label_names_the_queues_or_the_exclusions():
    assert queue_label(QueueFilter(("a", "b"))) == "a,b"
    assert queue_label(QueueFilter(None, ("c",))) == "*,-c"
    assert queue_label(ALL_QUEUES) == "*"
