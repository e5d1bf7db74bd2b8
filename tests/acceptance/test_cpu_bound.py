"""CPU-bound tasks on a real worker of two processes: spread over both, one at a
time in each, whether marked on the task or by the worker's CPU-bound queues."""

import collections
import itertools
import signal

from django.db import transaction
from django.tasks import TaskResultStatus

from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for

WORKER = (
    "-m", "django", "offload", "worker", "--processes", "2", "--threads", "4",
    "--cpu-bound-queues", "reports", "--no-scheduler", "-v", "1",
)  # fmt: skip
CPU_SECONDS = 0.4


def _enqueue_mixed(cpu_count: int, io_each: int) -> tuple[list[str], list[str]]:
    """``cpu_count`` CPU-bound tasks (every other one marked, the rest on the
    CPU-bound queue "reports"), each followed by ``io_each`` I/O-bound ones."""
    cpu, io = [], []
    for i in range(cpu_count):
        if i % 2:
            cpu.append(tasks.crunch_unmarked.using(queue_name="reports").enqueue(CPU_SECONDS))
        else:
            cpu.append(tasks.crunch.enqueue(CPU_SECONDS))
        io.extend(tasks.wait_io.enqueue(0.05) for _ in range(io_each))
    return [r.id for r in cpu], [r.id for r in io]


def _finish_and_check(proc, cpu: list[str], io: list[str]) -> None:
    """Wait for every task, stop the worker; CPU-bound tasks ran in both
    processes and never two at once in one."""
    everything = [*cpu, *io]
    wait_for(
        lambda: (
            TaskRecord.objects.filter(pk__in=everything, status=State.SUCCESSFUL).count()
            == len(everything)
        ),
        timeout=90,
        what="every task to succeed",
    )
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
    assert "cpu-bound reports: one task at a time per process" in output  # the banner

    values = dict(TaskRecord.objects.filter(pk__in=everything).values_list("pk", "return_value"))
    runs = collections.defaultdict(list)
    for task_id in cpu:
        ran = values[int(task_id)]
        runs[ran["pid"]].append((ran["start"], ran["end"]))
    io_pids = collections.Counter(values[int(task_id)]["pid"] for task_id in io)
    print(f"\nCPU-bound tasks per process: { {pid: len(r) for pid, r in runs.items()} }; "
          f"I/O tasks: {dict(io_pids)}")  # fmt: skip
    assert len(runs) == 2, runs  # both processes took some
    for pid, spans in runs.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"two CPU-bound tasks overlapped in process {pid}: {spans}"
    # Nothing ran twice, and the tasks passed on to a sibling cost no attempt.
    attempts = TaskRecord.objects.filter(pk__in=everything).values_list("attempt", flat=True)
    assert set(attempts) == {1}


def test_cpu_bound_tasks_waiting_at_start_spread_over_both_processes(start_process):
    with transaction.atomic():
        cpu, io = _enqueue_mixed(6, 2)
    _finish_and_check(start_process(*WORKER), cpu, io)


def test_cpu_bound_tasks_enqueued_one_by_one_to_a_warm_worker_spread(backend, start_process):
    # The case of a worker that has been running short tasks: it claims in
    # batches, and one process could take a whole burst of new tasks.
    proc = start_process(*WORKER)
    warm = [tasks.add.enqueue(i, i) for i in range(40)]
    wait_for(
        lambda: all(backend.get_result(r.id).status == TaskResultStatus.SUCCESSFUL for r in warm),
        timeout=60,
        what="the warm-up tasks",
    )
    cpu, io = _enqueue_mixed(5, 4)  # 25 tasks, one transaction each
    _finish_and_check(proc, cpu, io)
