"""The embedded worker in real web servers: runserver, gunicorn (4 workers), uvicorn."""

import os
import signal
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from offload.models import Lease, TaskRecord, WorkerRecord
from offload.states import State
from tests.acceptance.processes import alive, children_of
from tests.acceptance.servers import free_port, get_json, wait_for_web, web_command
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="gunicorn and /proc: Linux only")

LEASE_SECONDS = 2
# Long enough that a task found by the worker's poll rather than a wake-up
# starts half of it late on average: the latency check tells the two apart
# by far more than a loaded machine's delays.
POLL_INTERVAL = 3

# Short leases so a killed holder's slot and task come back within seconds.
OPTIONS = {
    "LEASE_SECONDS": LEASE_SECONDS,
    "POLL_INTERVAL": POLL_INTERVAL,
    "HEARTBEAT_SECONDS": 0.5,
    "RETRY": {"DELAY": 1, "JITTER": False},
}


def _options(**embedded: object) -> dict[str, object]:
    return {**OPTIONS, "EMBEDDED": {"ENABLED": True, "THREADS": 2, **embedded}}


def _start(start_process, kind: str, options: dict[str, object], workers: int = 1):
    port = free_port()
    proc = start_process(*web_command(kind, port, workers), options=options)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_web(f"{base}/embedded/whoami/")
    except RuntimeError:
        proc.kill()
        raise AssertionError(proc.communicate()[0]) from None
    return proc, base


def _holders() -> list[str]:
    live = Lease.objects.filter(name__startswith="embedded:", expires_at__gt=timezone.now())
    return list(live.values_list("owner", flat=True))


def _live_workers() -> list[WorkerRecord]:
    recent = timezone.now() - timedelta(seconds=LEASE_SECONDS)
    return list(WorkerRecord.objects.filter(name="embedded", heartbeat_at__gt=recent))


def _done(task_id: str) -> TaskRecord:
    wait_for(
        lambda: TaskRecord.objects.get(pk=task_id).status == State.SUCCESSFUL,
        timeout=30, what=f"task {task_id} to succeed",
    )  # fmt: skip
    return TaskRecord.objects.get(pk=task_id)


def _start_latencies(base: str, count: int = 10) -> list[float]:
    """Seconds from before the request that enqueues to the task's first line."""
    latencies = []
    for _ in range(count):
        before = time.time()
        task_id = get_json(f"{base}/embedded/stamp/")["id"]
        latencies.append(_done(task_id).return_value["at"] - before)
    return latencies


def _check_latency(kind: str, base: str) -> None:
    _start_latencies(base, 2)  # the first claims warm the worker's connection up
    latencies = _start_latencies(base)
    print(f"\n[{connection.vendor}] {kind}: request -> task start, ms: "
          f"median {statistics.median(latencies) * 1000:.1f}, "
          f"max {max(latencies) * 1000:.1f}")  # fmt: skip
    # Woken by the enqueue, not found by a poll (whose median would be about
    # POLL_INTERVAL / 2). Not a speed target: bench/ measures that.
    assert statistics.median(latencies) < POLL_INTERVAL / 6, latencies


def _wait_running(task_id: str) -> TaskRecord:
    wait_for(
        lambda: TaskRecord.objects.get(pk=task_id).status == State.RUNNING,
        timeout=20, what=f"task {task_id} to run",
    )  # fmt: skip
    return TaskRecord.objects.get(pk=task_id)


def _nothing_running() -> None:
    assert not TaskRecord.objects.filter(status=State.RUNNING).exists()


def _stop(proc, timeout: float = 60) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=timeout)
    return output


def _serve_everywhere(proc, base: str, workers: int) -> set[int]:
    """Requests until every gunicorn worker served one (each then runs the slot loop)."""
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < workers and time.monotonic() < deadline:
        pids.add(get_json(f"{base}/embedded/whoami/")["pid"])
    assert len(pids) == workers, pids
    assert set(children_of(proc.pid)) == pids
    return pids


def test_gunicorn_four_workers_two_slots_two_run_one(backend, start_process):
    proc, base = _start(start_process, "gunicorn", _options(PROCESSES=2), workers=4)
    pids = _serve_everywhere(proc, base, 4)
    wait_for(lambda: len(_live_workers()) == 2, what="two embedded workers")
    for _ in range(5):
        assert len(_holders()) == 2
        assert len(_live_workers()) == 2
        time.sleep(0.5)
    assert {w.pid for w in _live_workers()} < pids
    _stop(proc)
    _nothing_running()


def test_gunicorn_four_workers_one_runs_tasks_and_a_kill_hands_over(backend, start_process):
    proc, base = _start(start_process, "gunicorn", _options(PROCESSES=1), workers=4)
    pids = _serve_everywhere(proc, base, 4)
    wait_for(lambda: len(_live_workers()) == 1, what="one embedded worker")
    for _ in range(5):  # and never more than one, heartbeat after heartbeat
        assert len(_holders()) == 1
        assert len(_live_workers()) == 1
        time.sleep(0.5)
    holder = _live_workers()[0]
    assert holder.pid in pids
    assert _holders() == [holder.id]

    _check_latency("gunicorn -w 4", base)

    task_id = get_json(f"{base}/embedded/sleep/?seconds=3")["id"]
    assert _wait_running(task_id).lease_owner == holder.id
    killed_at = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    # Another gunicorn worker takes the slot once its lease lapses, and the
    # rescue gives the task a second attempt, which that worker runs.
    row = _done(task_id)
    print(f"[{connection.vendor}] kill -9 of the holder -> its 3 s task done elsewhere: "
          f"{time.monotonic() - killed_at:.1f}s (LEASE_SECONDS {LEASE_SECONDS})")  # fmt: skip
    assert row.attempt == 2
    assert row.worker_ids[-1] != holder.id
    new_holder = _live_workers()
    assert len(new_holder) == 1
    assert new_holder[0].pid != holder.pid
    assert new_holder[0].pid in pids  # a worker that was already there
    assert _holders() == [new_holder[0].id]

    task_id = get_json(f"{base}/embedded/sleep/?seconds=1")["id"]
    _wait_running(task_id)
    output = _stop(proc)
    assert "Traceback" not in output, output
    # Finished within the shutdown timeout, during the server's graceful stop.
    assert TaskRecord.objects.get(pk=task_id).status == State.SUCCESSFUL
    _nothing_running()
    assert _holders() == []
    assert _live_workers() == []


@pytest.mark.parametrize("kind", ["gunicorn", "gunicorn-gthread", "uvicorn"])
def test_sigterm_gives_a_long_task_back_with_a_record(backend, start_process, kind):
    proc, base = _start(start_process, kind, _options(SHUTDOWN_TIMEOUT=1))
    _check_latency(kind, base)
    task_id = get_json(f"{base}/embedded/sleep/?seconds=30")["id"]
    _wait_running(task_id)
    began = time.monotonic()
    output = _stop(proc)
    assert time.monotonic() - began < 20, output
    assert "Traceback" not in output, output
    row = TaskRecord.objects.get(pk=task_id)
    assert row.status == State.READY
    assert row.lease_owner is None
    assert "shutdown timeout" in str(row.errors), row.errors
    _nothing_running()
    assert _holders() == []


def test_runserver_runs_it_in_the_autoreloaders_child_only(backend, start_process):
    proc, base = _start(start_process, "runserver", _options())
    serving = get_json(f"{base}/embedded/whoami/")["pid"]
    assert serving != proc.pid
    assert serving in children_of(proc.pid)
    _check_latency("runserver", base)
    workers = _live_workers()
    assert [w.pid for w in workers] == [serving]
    # The process keeps the server's title.
    assert b"runserver" in Path(f"/proc/{serving}/cmdline").read_bytes()
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert not alive(serving)
    wait_for(lambda: _holders() == [], what="the slot freed")
    _nothing_running()


def test_the_scheduler_runs_with_it_when_asked(backend, start_process):
    options = {
        **_options(SCHEDULER=True),
        "SCHEDULES": {"tick": {"task": "tests.app.tasks.stamp", "interval": 1}},
    }
    proc, _base = _start(start_process, "uvicorn", options)
    fired = TaskRecord.objects.filter(task_path="tests.app.tasks.stamp")
    wait_for(
        lambda: fired.filter(status=State.SUCCESSFUL).count() >= 2,
        timeout=20, what="two scheduled ticks run",
    )  # fmt: skip
    _stop(proc)
    _nothing_running()
