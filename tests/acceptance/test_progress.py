"""Progress from a real worker process: the row advances while the task runs."""

import signal
import time

from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker")


def _progress(task_id: int) -> tuple[State | None, float | None, str | None]:
    row = TaskRecord.objects.get(pk=task_id)
    return row.status, row.progress_current, row.progress_message


def test_progress_advances_before_the_task_ends(backend, start_process):
    steps, pause = 8, 0.5
    result = tasks.report_steps.enqueue(steps, pause, "chunk")
    proc = start_process(*WORKER, "--processes", "1", "-v", "0", options={"PROGRESS_INTERVAL": 0.2})
    seen: list[float] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, current, message = _progress(result.id)
        if status != State.RUNNING and status != State.READY:
            break
        if status == State.RUNNING and current is not None and current not in seen:
            seen.append(current)
            assert message == f"chunk {int(current)}"
        time.sleep(0.05)
    # Several distinct reports were visible while the task was still running,
    # each later than the one before, and the last one landed with the outcome.
    assert len(seen) >= 3, seen
    assert seen == sorted(seen)
    wait_for(lambda: _progress(result.id)[0] == State.SUCCESSFUL, timeout=30, what="the end")
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.progress_current, row.progress_total, row.progress_message) == (8, 8, "chunk 8")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
