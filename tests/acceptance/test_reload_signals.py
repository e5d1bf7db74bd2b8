"""Under DEBUG the worker runs under the autoreloader: a stop is as graceful as without it.

``startproject`` sets ``DEBUG = True``, so this is how a new project's worker
runs: a parent process that restarts a child that supervises. A SIGTERM to the
parent, a Ctrl-C (SIGINT to the terminal's process group) or a code change must
let the running task finish, once, with one attempt.
"""

import os
import signal
import time
from pathlib import Path

from django.db import connection
from django.tasks import TaskResultStatus

import offload
from offload.models import TaskRecord
from tests.acceptance.processes import alive, children_of
from tests.app import tasks
from tests.app.models import Run
from tests.helpers import wait_for

# No --reload: DEBUG turns the reloader on, as in a new project.
WORKER = ("-m", "django", "offload", "worker", "--processes", "1", "--threads", "1")
DEBUG = {"OFFLOAD_TEST_DEBUG": "1"}
TASK_SECONDS = 8


def _descendants(pid: int) -> list[int]:
    found = children_of(pid)
    return found + [grandchild for child in found for grandchild in children_of(child)]


def _ran_once_to_the_end(backend, result_id: str) -> None:
    result = backend.get_result(result_id)
    record = TaskRecord.objects.get(id=result_id)
    assert result.status == TaskResultStatus.SUCCESSFUL, (result.status, record.errors)
    assert result.attempts == 1
    assert record.errors == []
    assert Run.objects.count() == 1  # its code started once


def _stop_while_a_task_runs(backend, start_process, stop) -> None:
    long = tasks.mark_then_sleep.enqueue("long", TASK_SECONDS)
    proc = start_process(*WORKER, "--shutdown-timeout", "30", env=DEBUG)
    wait_for(lambda: Run.objects.count() == 1, timeout=60, what="the task running")
    descendants = _descendants(proc.pid)
    assert descendants, "the reloader's child"
    begun = time.monotonic()
    stop(proc)
    output, _ = proc.communicate(timeout=60)
    took = time.monotonic() - begun
    print(f"\n[{connection.vendor}] exited {took:.2f}s after the stop signal")
    wait_for(lambda: not any(alive(pid) for pid in descendants), timeout=15, what="no orphans")
    assert proc.returncode == 0, output
    assert "Supervisor gone" not in output, output
    assert "Processed 1 task(s): 1 successful" in output, output
    _ran_once_to_the_end(backend, long.id)


def test_sigterm_to_the_reloader_lets_the_running_task_finish(backend, start_process):
    _stop_while_a_task_runs(backend, start_process, lambda proc: proc.send_signal(signal.SIGTERM))


def test_ctrl_c_under_the_reloader_lets_the_running_task_finish(backend, start_process):
    # A terminal sends SIGINT to its whole foreground process group.
    _stop_while_a_task_runs(backend, start_process, lambda proc: os.killpg(proc.pid, signal.SIGINT))


def test_a_code_change_lets_the_running_task_finish_then_restarts(backend, start_process):
    long = tasks.mark_then_sleep.enqueue("long", TASK_SECONDS)
    proc = start_process(*WORKER, "--shutdown-timeout", "30", env=DEBUG)
    wait_for(lambda: Run.objects.count() == 1, timeout=60, what="the task running")
    # The reloader compares modification times once a second with what it saw
    # the time before: touch the file only after it has looked once.
    time.sleep(2)
    os.utime(Path(tasks.__file__))
    wait_for(
        lambda: backend.get_result(long.id).status == TaskResultStatus.SUCCESSFUL,
        timeout=TASK_SECONDS + 30,
    )
    after = tasks.add.enqueue(2, 2)  # run by the restarted worker
    wait_for(lambda: backend.get_result(after.id).status == TaskResultStatus.SUCCESSFUL, timeout=60)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert output.count(f"offload {offload.__version__} worker") == 2, output
    assert "Supervisor gone" not in output, output
    _ran_once_to_the_end(backend, long.id)


def test_the_child_stops_gracefully_if_the_reloader_s_parent_is_killed(backend, start_process):
    long = tasks.mark_then_sleep.enqueue("long", 3)
    proc = start_process(*WORKER, "--shutdown-timeout", "30", env=DEBUG)
    wait_for(lambda: Run.objects.count() == 1, timeout=60, what="the task running")
    descendants = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)  # nothing can be forwarded
    proc.wait()
    wait_for(lambda: not any(alive(pid) for pid in descendants), timeout=30, what="no orphans")
    _ran_once_to_the_end(backend, long.id)
