"""CPU-bound tasks on a real worker of two processes: spread over both, one at a
time in each, whether marked on the task or by the worker's CPU-bound queues."""

import collections
import itertools
import signal

from django.db import transaction

from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker")
CPU_SECONDS = 0.4


def _enqueue_mixed() -> tuple[list[str], list[str]]:
    """Six CPU-bound tasks (three marked, three on the CPU-bound queue "reports")
    between twelve I/O-bound ones, committed together."""
    cpu, io = [], []
    with transaction.atomic():
        for i in range(6):
            if i % 2:
                cpu.append(tasks.crunch_unmarked.using(queue_name="reports").enqueue(CPU_SECONDS))
            else:
                cpu.append(tasks.crunch.enqueue(CPU_SECONDS))
            io.extend(tasks.wait_io.enqueue(0.05) for _ in range(2))
    return [r.id for r in cpu], [r.id for r in io]


def test_cpu_bound_tasks_run_in_every_process_and_never_two_at_once_in_one(backend, start_process):
    cpu, io = _enqueue_mixed()
    proc = start_process(
        *WORKER, "--processes", "2", "--threads", "4", "--cpu-bound-queues", "reports",
        "--no-scheduler", "-v", "1",
    )  # fmt: skip
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
    print(f"\nCPU-bound tasks per process: { {pid: len(r) for pid, r in runs.items()} }")
    assert len(runs) == 2, runs  # both processes took some
    for pid, spans in runs.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"two CPU-bound tasks overlapped in process {pid}: {spans}"
    # Nothing was run twice, and the tasks passed on cost no attempt.
    attempts = TaskRecord.objects.filter(pk__in=everything).values_list("attempt", flat=True)
    assert set(attempts) == {1}
