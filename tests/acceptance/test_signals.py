"""The supervisor and its task processes told to stop by real signals."""

import os
import signal
import time

from django.db import connection
from django.tasks import TaskResultStatus

import offload
from offload.models import TaskRecord
from offload.states import State
from tests.acceptance.processes import alive, children_of
from tests.app import tasks
from tests.app.models import Run
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker", "--processes", "2", "--threads", "2")


def _running() -> int:
    return TaskRecord.objects.filter(status=State.RUNNING).count()


def _started() -> int:
    """Tasks whose code has begun (a claimed task may still wait for its thread)."""
    return Run.objects.count()


def test_sigterm_lets_running_tasks_finish_and_exits_0(backend, start_process):
    short = [tasks.mark_then_sleep.enqueue(f"m{i}", 1.0) for i in range(4)]
    proc = start_process(*WORKER, "--shutdown-timeout", "20")
    wait_for(lambda: _started() == 4, what="four tasks running")
    begun = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    print(f"\n[{connection.vendor}] stopped {time.monotonic() - begun:.2f}s after SIGTERM")
    assert proc.returncode == 0, output
    assert [backend.get_result(r.id).status for r in short] == [TaskResultStatus.SUCCESSFUL] * 4
    assert "Processed 4 task(s): 4 successful" in output


def test_sigterm_gives_back_what_outlasts_the_shutdown_timeout(backend, start_process):
    long = [tasks.mark_then_sleep.enqueue(f"m{i}", 60) for i in range(3)]
    waiting = [tasks.add.enqueue(i, i) for i in range(2)]  # never claimed: no room
    proc = start_process(*WORKER, "--threads", "1", "--shutdown-timeout", "1")
    wait_for(lambda: _started() == 2, what="two long tasks running")
    begun = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    took = time.monotonic() - begun
    print(f"\n[{connection.vendor}] exited {took:.2f}s after SIGTERM (shutdown timeout 1s)")
    assert proc.returncode == 0, output
    assert took < 10, output
    assert _running() == 0
    results = [backend.get_result(r.id) for r in long]
    assert {r.status for r in results} == {TaskResultStatus.READY}
    assert sorted(r.attempts for r in results) == [0, 1, 1]  # the two that ran go back
    # Each that ran says so in its history; the one never started leaves no trace.
    histories = sorted(
        [e["exception_class_path"] for e in TaskRecord.objects.get(id=r.id).errors] for r in long
    )
    assert histories == [
        [],
        ["offload.exceptions.AttemptGivenBack"],
        ["offload.exceptions.AttemptGivenBack"],
    ]
    assert {backend.get_result(r.id).status for r in waiting} <= {
        TaskResultStatus.READY,
        TaskResultStatus.SUCCESSFUL,
    }
    assert "Shutdown timeout (1s) reached" in output


def test_a_second_signal_gives_everything_back_at_once(backend, start_process):
    stuck = [tasks.sleep_then_return.enqueue(60, i) for i in range(2)]
    proc = start_process(*WORKER, "--threads", "1", "--shutdown-timeout", "60")
    wait_for(lambda: _running() == 2, what="two long tasks running")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    begun = time.monotonic()
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert time.monotonic() - begun < 8, output
    assert proc.returncode == 0, output
    assert _running() == 0
    for result in stuck:
        done = backend.get_result(result.id)
        assert (done.status, done.attempts) == (TaskResultStatus.READY, 1)


def test_sigkill_of_the_supervisor_leaves_no_task_process_behind(backend, start_process):
    stuck = [tasks.sleep_then_return.enqueue(60, i) for i in range(4)]
    proc = start_process(*WORKER)
    wait_for(lambda: _running() == 4, what="four long tasks running")
    children = children_of(proc.pid)
    assert len(children) == 2, children
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    begun = time.monotonic()
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=15, what="no orphans")
    print(f"\n[{connection.vendor}] task processes gone {time.monotonic() - begun:.2f}s after")
    # They noticed their supervisor was gone and gave their tasks back first.
    assert _running() == 0
    assert {backend.get_result(r.id).status for r in stuck} == {TaskResultStatus.READY}


def test_a_crashed_task_process_is_replaced_and_its_task_runs_again(backend, start_process):
    crasher = tasks.crash_first_attempt.enqueue("second time lucky")
    proc = start_process(*WORKER)
    wait_for(
        lambda: backend.get_result(crasher.id).status == TaskResultStatus.SUCCESSFUL,
        timeout=30,
        what="the task to run again after its process died",
    )
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    result = backend.get_result(crasher.id)
    assert (result.return_value, result.attempts) == ("second time lucky", 2)
    assert "died (exit code 3)" in output
    assert "1 process restart(s)" in output
    # The crash spent the first attempt, and its history says so.
    (crash,) = result.errors
    assert crash.exception_class_path == "offload.exceptions.WorkerCrashed"
    assert "died (exit code 3) during attempt 1" in crash.traceback


def test_reload_restarts_on_a_code_change_and_sigterm_leaves_nothing(backend, start_process):
    from pathlib import Path

    proc = start_process(*WORKER, "--reload")
    first = tasks.add.enqueue(1, 1)
    # Generous: a reloader, a supervisor and its processes start on a loaded machine.
    wait_for(lambda: backend.get_result(first.id).status == TaskResultStatus.SUCCESSFUL, timeout=60)
    # The reloader compares modification times once a second with what it saw
    # the time before: touch the file only after it has looked once.
    time.sleep(2)
    os.utime(Path(tasks.__file__))  # what saving the file does, as the reloader sees it
    time.sleep(2.5)
    second = tasks.add.enqueue(2, 2)  # run by the restarted worker
    wait_for(
        lambda: backend.get_result(second.id).status == TaskResultStatus.SUCCESSFUL, timeout=60
    )
    descendants = [*children_of(proc.pid)]
    descendants += [pid for child in descendants for pid in children_of(child)]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    wait_for(lambda: not any(alive(pid) for pid in descendants), timeout=15, what="no orphans")
    assert output.count(f"offload {offload.__version__} worker") == 2, output  # a banner per start
    assert _running() == 0
