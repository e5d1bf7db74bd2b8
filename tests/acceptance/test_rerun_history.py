"""A task that runs twice says why in its history (real processes, real signals)."""

import signal

from django.tasks import TaskResultStatus

from offload.models import TaskRecord
from tests.acceptance.processes import alive, children_of
from tests.app import tasks
from tests.app.models import Run
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker", "--no-reload", "--processes", "1", "--threads", "1")


def test_a_task_given_back_when_its_supervisor_died_runs_again_with_a_record(
    backend, start_process
):
    result = tasks.mark_then_sleep.enqueue("twice", 3)
    proc = start_process(*WORKER, "--shutdown-timeout", "30")
    wait_for(lambda: Run.objects.count() == 1, timeout=60, what="the task running")
    (process,) = children_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not alive(process), timeout=15, what="its task process gone")
    row = TaskRecord.objects.get(id=result.id)
    assert (row.attempt, row.lease_owner) == (1, None)

    again = start_process(*WORKER, "--burst")
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 0, output
    finished = backend.get_result(result.id)
    assert finished.status == TaskResultStatus.SUCCESSFUL
    assert finished.attempts == 2
    (error,) = TaskRecord.objects.get(id=result.id).errors
    assert error["exception_class_path"] == "offload.exceptions.AttemptGivenBack"
    assert error["attempt"] == 1
    assert error["worker_id"].endswith("/p1")
    assert "its supervisor was gone" in error["traceback"]
    assert Run.objects.count() == 2
