"""A process that dies with successes not yet written: those tasks run again, with a record."""

import signal
import time

from offload.models import TaskRecord
from offload.states import State
from offload.worker.children import Child
from offload.worker.losses import give_back, how_it_ended, record_lost_attempts
from tests.app import tasks


def test_a_dead_process_s_unwritten_successes_go_back_with_a_record_of_the_lost_outcome(backend):
    written, unwritten, running = (int(tasks.add.enqueue(n, n).id) for n in range(3))
    claimed = backend.store.claim("w-dead", limit=3, lease_seconds=60)
    assert sorted(t.id for t in claimed) == [written, unwritten, running]

    # What the process told its supervisor before it was killed: three tasks
    # started; one succeeded and was written ("end"); one succeeded and was
    # handed to the dispatcher ("done"), not written yet; one still ran.
    backend.store.complete(written, 1, "0")
    child = Child(
        slot=0, worker_id="w-dead", proc=None, control=-1, status=-1,  # type: ignore[arg-type]
        started=time.monotonic(),
    )  # fmt: skip
    child.take(
        f"start {written} 1 -\nstart {unwritten} 1 -\nstart {running} 1 -\n"
        f"done {written} 1 -\nend {written} 1 -\ndone {unwritten} 1 -\n".encode()
    )
    assert set(child.running) == {running}
    assert child.done == {unwritten: 1}

    record_lost_attempts(backend.config, child, how_it_ended(-signal.SIGKILL))
    give_back(backend.config.database, child)

    # The task that was running may have caused the death: it spent its attempt.
    blamed = TaskRecord.objects.get(pk=running)
    assert blamed.status == State.READY
    assert blamed.attempt == 1
    assert [e["exception_class_path"] for e in blamed.errors] == [
        "offload.exceptions.WorkerCrashed"
    ]
    # The one whose success was lost runs again, and its history says why: a
    # re-run always leaves a trace.
    again = TaskRecord.objects.get(pk=unwritten)
    assert again.status == State.READY
    assert again.attempt == 1
    assert [e["exception_class_path"] for e in again.errors] == ["offload.exceptions.OutcomeLost"]
    assert "outcome was lost with process w-dead" in again.errors[0]["traceback"]
    assert again.lease_owner is None
    # The written one stays written.
    assert TaskRecord.objects.get(pk=written).status == State.SUCCESSFUL
    assert child.done == {}
