"""Real worker processes, started through the management command, on a real database."""

import collections
import re
import signal
import statistics
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Max, Min
from django.tasks import TaskResultStatus

from offload.models import TaskRecord
from offload.states import State
from tests.acceptance.processes import children_of, cpu_seconds
from tests.app import tasks
from tests.app.models import Run
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker")
BURST = (*WORKER, "--burst")


def _enqueue_bulk(count: int, make) -> list[str]:
    # One transaction: committing thousands of single inserts one by one would
    # only slow the test down, and the workers start after it commits.
    with transaction.atomic():
        return [make(i).id for i in range(count)]


def _finish(proc, timeout: float) -> str:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output
    return output


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    return _finish(proc, timeout=60)


def test_two_processes_of_four_threads_drain_5000_tasks_correctly(backend, start_process):
    total = 5000
    ids = _enqueue_bulk(total, lambda i: tasks.add.enqueue(i, i * 2))
    begun = time.monotonic()
    output = _finish(
        start_process(*BURST, "--processes", "2", "--threads", "4", "-v", "0"), timeout=600
    )
    elapsed = time.monotonic() - begun
    print(f"\n[{connection.vendor}] 2x4 drained {total} tasks in {elapsed:.2f}s "
          f"({total / elapsed:.0f}/s, process start-up included)")  # fmt: skip
    assert "Traceback" not in output, output
    rows = TaskRecord.objects.filter(pk__in=ids).values_list(
        "pk", "status", "return_value", "attempt", "lease_owner"
    )
    by_id = {pk: rest for pk, *rest in rows}
    for i, task_id in enumerate(ids):
        assert by_id[int(task_id)] == [State.SUCCESSFUL, i * 3, 1, None]
    processes = {w[0].rsplit("/", 1)[1].split(".")[0] for w in
                 TaskRecord.objects.values_list("worker_ids", flat=True)}  # fmt: skip
    assert processes == {"p1", "p2"}  # both processes took part


def test_200_async_tasks_sleeping_one_second_finish_in_one_process(backend, start_process):
    ids = _enqueue_bulk(200, lambda i: tasks.async_sleep.enqueue(1.0, i))
    begun = time.monotonic()
    output = _finish(
        start_process(*BURST, "--processes", "1", "--async-concurrency", "200", "-v", "0"),
        timeout=120,
    )
    elapsed = time.monotonic() - begun
    first, last = (
        TaskRecord.objects.filter(pk__in=ids)
        .aggregate(first=Min("started_at"), last=Max("finished_at"))
        .values()
    )
    running = (last - first).total_seconds()
    print(f"\n[{connection.vendor}] 200 async 1s sleeps in one process: {elapsed:.2f}s "
          f"with start-up, {running:.2f}s from first start to last finish")  # fmt: skip
    # One after another they would take 200 s.
    assert running < 3, output
    assert elapsed < 10, output
    values = dict(TaskRecord.objects.filter(pk__in=ids).values_list("pk", "return_value"))
    assert [values[int(i)] for i in ids] == list(range(200))
    assert not TaskRecord.objects.exclude(status=State.SUCCESSFUL).exists()


def test_two_workers_racing_run_each_task_exactly_once(start_process):
    total = 2000
    _enqueue_bulk(total, lambda i: tasks.record_run.enqueue(f"m{i}"))
    racers = [
        start_process(*BURST, "--processes", "2", "--threads", "2", "--name", f"racer{n}")
        for n in range(2)
    ]
    outputs = [_finish(proc, timeout=600) for proc in racers]

    runs = collections.Counter(Run.objects.values_list("marker", flat=True))
    duplicates = {marker: n for marker, n in runs.items() if n > 1}
    leases_left = collections.Counter(TaskRecord.objects.values_list("lease_owner", flat=True))
    owners = collections.Counter(
        w.split(":")[0] for ids in TaskRecord.objects.values_list("worker_ids", flat=True)
        for w in ids
    )  # fmt: skip
    print(f"\n[{connection.vendor}] tasks per worker: {dict(sorted(owners.items()))}")
    assert duplicates == {}
    assert len(runs) == total
    assert leases_left == {None: total}
    assert TaskRecord.objects.filter(status=State.SUCCESSFUL, attempt=1).count() == total
    assert sum(int(o.split("Processed ")[1].split(" ")[0]) for o in outputs) == total


def test_an_idle_worker_starts_new_tasks_quickly_and_costs_almost_no_cpu(backend, start_process):
    proc = start_process(*WORKER, "--processes", "1", "--threads", "2")
    warm = tasks.add.enqueue(0, 0)
    wait_for(lambda: backend.get_result(warm.id).status == TaskResultStatus.SUCCESSFUL)
    time.sleep(1)
    pids = [proc.pid, *children_of(proc.pid)]
    before = sum(cpu_seconds(pid) for pid in pids)
    time.sleep(3)
    idle_share = (sum(cpu_seconds(pid) for pid in pids) - before) / 3
    ids = []
    for i in range(30):
        ids.append(tasks.add.enqueue(i, 1).id)
        time.sleep(0.05)
    wait_for(lambda: TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == 30)
    waits = sorted(
        (started - enqueued).total_seconds() * 1000
        for started, enqueued in TaskRecord.objects.filter(pk__in=ids).values_list(
            "started_at", "enqueued_at"
        )
    )
    _stop(proc)
    p50 = statistics.median(waits)
    print(f"\n[{connection.vendor}] idle CPU {idle_share:.2%} of a core (poll interval 0.05s); "
          f"enqueue-to-start p50 {p50:.1f} ms, max {waits[-1]:.1f} ms")  # fmt: skip
    assert idle_share < 0.05
    if connection.vendor == "postgresql":
        assert p50 < 50  # LISTEN/NOTIFY, not polling


def test_a_delayed_task_starts_on_time(backend, start_process):
    proc = start_process(*WORKER, "--processes", "1")
    warm = tasks.add.enqueue(0, 0)
    wait_for(lambda: backend.get_result(warm.id).status == TaskResultStatus.SUCCESSFUL)
    with connection.cursor() as cursor:  # the database's clock, as the worker uses
        cursor.execute("SELECT 1")
    due = TaskRecord.objects.get(pk=warm.id).finished_at + timedelta(seconds=1.5)
    delayed = tasks.add.using(run_after=due).enqueue(1, 1)
    wait_for(lambda: backend.get_result(delayed.id).status == TaskResultStatus.SUCCESSFUL)
    started = TaskRecord.objects.get(pk=delayed.id).started_at
    _stop(proc)
    late = (started - due).total_seconds()
    print(f"\n[{connection.vendor}] delayed task started {late * 1000:.0f} ms after its time")
    assert 0 <= late < 0.5


def test_processes_are_recycled_after_max_tasks_per_child(backend, start_process):
    ids = _enqueue_bulk(30, lambda i: tasks.add.enqueue(i, 0))
    output = _finish(
        start_process(*BURST, "--processes", "1", "--threads", "2", "--max-tasks-per-child", "10"),
        timeout=120,
    )
    assert output.count("recycled; starting its replacement") >= 2, output
    owners = collections.Counter(
        TaskRecord.objects.get(pk=i).worker_ids[0].rsplit("/", 1)[1] for i in ids
    )
    assert max(owners.values()) <= 10, owners  # no process ran more than its limit
    assert TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == 30


def test_processes_over_the_memory_limit_are_recycled_between_tasks(backend, start_process):
    # Any Django process holds more than 8 MiB, so each process is replaced
    # after every task it runs, and never in the middle of one.
    ids = _enqueue_bulk(4, lambda i: tasks.sleep_then_return.enqueue(0.2, i))
    output = _finish(
        start_process(*BURST, "--processes", "1", "--threads", "1",
                      "--max-memory-per-child", "8M"),
        timeout=120,
    )  # fmt: skip
    assert output.count("recycled; starting its replacement") >= 3, output
    assert "max memory per child: 8 MiB" in output
    values = [backend.get_result(i) for i in ids]
    assert [(r.status, r.return_value, r.attempts) for r in values] == [
        (TaskResultStatus.SUCCESSFUL, i, 1) for i in range(4)
    ]


def test_flags_and_environment_choose_queues_and_log_format(backend, start_process, child_env):
    email = tasks.send_email.enqueue("a@example.com")
    plain = tasks.add.enqueue(1, 2)
    child_env["OFFLOAD_LOG_FORMAT"] = "json"
    output = _finish(
        start_process(*BURST, "--exclude-queues", "default", "--processes", "1"), timeout=60
    )
    assert backend.get_result(email.id).status == TaskResultStatus.SUCCESSFUL
    assert backend.get_result(plain.id).status == TaskResultStatus.READY
    assert "queues    emails, reports" in output  # the banner
    assert "1 process x 4 threads" in output


def _titles(supervisor_pid: int) -> list[str]:
    titles = []
    for pid in children_of(supervisor_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                titles.append(cmdline.read().replace(b"\0", b" ").decode().strip())
        except OSError:
            continue
    return titles


def test_process_titles_count_running_threads_apart_from_queued_claims(backend, start_process):
    # Short tasks, so the process claims ahead of its two threads.
    _enqueue_bulk(3000, lambda i: tasks.sleep_then_return.enqueue(0.004, i))
    proc = start_process(*WORKER, "--processes", "1", "--threads", "2", "-v", "0")
    pattern = re.compile(
        r"offload: worker \S+: busy, (\d+)/2 threads(?: \(\+(\d+) queued\))?, 0 async, \d+ done"
    )
    readings: list[tuple[int, int]] = []

    def read_titles() -> bool:
        for title in _titles(proc.pid):
            if match := pattern.fullmatch(title):
                readings.append((int(match.group(1)), int(match.group(2) or 0)))
        return len(readings) >= 20

    wait_for(read_titles, timeout=60, what="20 busy task process titles")
    assert all(running <= 2 for running, _ in readings), readings
    assert any(queued > 0 for _, queued in readings), readings
    _stop(proc)


def test_a_worker_runs_tasks_in_a_project_that_pools_its_connections(backend, start_process):
    """Django's pool (OPTIONS["pool"], PostgreSQL) refuses persistent
    connections; the worker's own connection must not come from it."""
    if connection.vendor != "postgresql":
        pytest.skip("Django pools connections on PostgreSQL only")
    ids = _enqueue_bulk(50, lambda i: tasks.add.enqueue(i, i))
    output = _finish(
        start_process(*BURST, "--processes", "1", "--threads", "2", "-v", "0",
                      env={"OFFLOAD_TEST_PG_POOL": "1"}),
        timeout=120,
    )  # fmt: skip
    assert "Traceback" not in output, output
    statuses = TaskRecord.objects.filter(pk__in=ids).values_list("status", flat=True)
    assert list(statuses) == [State.SUCCESSFUL] * len(ids)
