"""Each way an attempt can end without an outcome of its own, through the code
that writes it, on every database: an attempt whose code started stays spent
and is in the task's history with its reason, worker and attempt; one given
back before its code started leaves no trace and costs no attempt (see
``failures.cut_short``)."""

import time

from offload.models import TaskRecord
from offload.states import State
from offload.store import TaskStore
from offload.worker.children import Child
from offload.worker.leases import Leases, Registration
from offload.worker.losses import how_it_ended, record_lost_attempts
from offload.worker.rescue import Rescuer
from tests.app import tasks

WORKER = "w-test/p1"


def _claim(backend, count: int = 1, lease_seconds: float = 60):
    for i in range(count):
        tasks.add.enqueue(i, i)
    claimed = backend.store.claim(WORKER, limit=count, lease_seconds=lease_seconds)
    assert len(claimed) == count
    return claimed


def _leases(backend) -> Leases:
    registration = Registration(WORKER, "w-test", 1, "default", "*", 1)
    return Leases(registration, backend.config, lambda line: None, list)


def _child(lines: str) -> Child:
    child = Child(
        slot=1, worker_id=WORKER, proc=None, control=-1, status=-1,  # type: ignore[arg-type]
        started=time.monotonic(),
    )  # fmt: skip
    child.take(lines.encode())
    return child


def _recorded(task_id: int, kind: str, says: str) -> TaskRecord:
    """The task is back with its attempt spent and one record of why."""
    row = TaskRecord.objects.get(pk=task_id)
    assert row.attempt == 1
    assert row.worker_ids == [WORKER]
    assert row.lease_owner is None
    assert [e["exception_class_path"] for e in row.errors] == [f"offload.exceptions.{kind}"]
    (error,) = row.errors
    assert (error["attempt"], error["worker_id"]) == (1, WORKER)
    assert says in error["traceback"]
    return row


def test_given_back_before_its_code_started(backend):
    (task,) = _claim(backend)
    assert _leases(backend).give_back(backend.store, [task], started=False, why="stopping") == 1
    row = TaskRecord.objects.get(pk=task.id)
    assert (row.status, row.attempt, row.worker_ids, row.errors) == (State.READY, 0, [], [])


def test_given_back_after_its_code_started_at_shutdown(backend):
    (task,) = _claim(backend)
    why = "still running when the shutdown timeout (1s) passed"
    leases = _leases(backend)
    leases.started(task, begun=time.monotonic() - 0.25)  # its start not written yet
    assert leases.give_back(backend.store, [task], started=True, why=why) == 1
    row = _recorded(task.id, "AttemptGivenBack", why)
    assert row.status == State.READY
    # Its start is in the row: a quarter of a second before the give-back.
    assert row.started_at == row.last_attempted_at
    assert -0.5 < (row.started_at - row.claimed_at).total_seconds() < 0.5


def test_rescued_after_its_lease_expired(backend):
    (task,) = _claim(backend, lease_seconds=-1)  # a lease already expired
    rescuer = Rescuer(backend.config.database, backend.config, "rescuer")
    assert rescuer.work(TaskStore(backend.config.database)) == 1
    row = _recorded(task.id, "WorkerLost", "stopped renewing its lease")
    assert row.status == State.READY


def test_killed_for_its_timeout_and_the_task_running_beside_it(backend):
    culprit, beside = _claim(backend, count=2)
    child = _child(f"start {culprit.id} 1 -\nstart {beside.id} 1 -\n")
    child.culprit = (culprit.id, 1, "timeout")
    record_lost_attempts(backend.config, child, how_it_ended(-9))
    assert _recorded(culprit.id, "TaskTimedOut", "ran past its timeout").status == State.READY
    row = _recorded(beside.id, "AttemptGivenBack", f"killed for task {culprit.id}")
    assert row.status == State.READY


def test_lost_when_its_process_crashed(backend):
    (task,) = _claim(backend)
    record_lost_attempts(backend.config, _child(f"start {task.id} 1 -\n"), how_it_ended(-11))
    row = _recorded(task.id, "WorkerCrashed", "died (signal SIGSEGV) during attempt 1")
    assert row.status == State.READY
