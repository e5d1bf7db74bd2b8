"""A worker process told to stop by a real signal."""

import signal
import time

from django.tasks import TaskResultStatus

from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for


def test_sigterm_finishes_the_running_task_and_gives_back_the_rest(backend, start_process):
    slow = [tasks.sleep_then_return.enqueue(0.6, i) for i in range(5)]
    proc = start_process("-m", "django", "offload", "worker")
    wait_for(lambda: TaskRecord.objects.filter(status=State.RUNNING).exists())
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    statuses = [backend.get_result(r.id).status for r in slow]
    assert TaskResultStatus.RUNNING not in statuses
    # The task that was running finished; the worker then stopped instead of
    # going on through the queue, leaving the rest READY for another worker.
    assert statuses.count(TaskResultStatus.SUCCESSFUL) >= 1
    assert statuses.count(TaskResultStatus.READY) >= 1
    assert "Processed" in output


def test_a_second_signal_interrupts_the_task_and_gives_it_back(backend, start_process):
    stuck = tasks.sleep_then_return.enqueue(60, "long")
    proc = start_process("-m", "django", "offload", "worker")
    wait_for(lambda: backend.get_result(stuck.id).status == TaskResultStatus.RUNNING)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    result = backend.get_result(stuck.id)
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 1  # it ran once, and is ready to run again elsewhere
