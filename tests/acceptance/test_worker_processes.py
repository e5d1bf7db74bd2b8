"""Real worker processes, started through the management command, on a real database."""

import collections
import time

from django.db import connection
from django.tasks import TaskResultStatus

from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.app.models import Run

WORKER = ("-m", "django", "offload", "worker", "--burst")


def _enqueue_bulk(count: int, make) -> list[str]:
    # One transaction: committing 2,000 single inserts one by one would only
    # slow the test down, and the worker processes start after it commits.
    from django.db import transaction

    with transaction.atomic():
        return [make(i).id for i in range(count)]


def _finish(proc, timeout: float) -> str:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output
    return output


def test_burst_drains_a_thousand_tasks_with_correct_results(backend, start_process):
    ids = _enqueue_bulk(1000, lambda i: tasks.add.enqueue(i, i * 2))
    begun = time.monotonic()
    output = _finish(start_process(*WORKER), timeout=300)
    elapsed = time.monotonic() - begun
    print(f"\n[{connection.vendor}] drained 1000 tasks in {elapsed:.2f}s ({1000 / elapsed:.0f}/s)")
    assert "Processed 1000 task(s): 1000 successful, 0 failed" in output
    for i, task_id in enumerate(ids):
        result = backend.get_result(task_id)
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == i * 3
        assert result.attempts == 1


def test_four_processes_racing_run_each_task_exactly_once(start_process):
    total = 2000
    _enqueue_bulk(total, lambda i: tasks.record_run.enqueue(f"m{i}"))
    racers = [start_process(*WORKER, "--name", f"racer{n}") for n in range(4)]
    outputs = [_finish(proc, timeout=600) for proc in racers]

    runs = collections.Counter(Run.objects.values_list("marker", flat=True))
    duplicates = {marker: n for marker, n in runs.items() if n > 1}
    # Finished rows hold no lease: every lease_owner must be back to NULL.
    leases_left = collections.Counter(TaskRecord.objects.values_list("lease_owner", flat=True))
    owners = collections.Counter(
        w.split(":")[0]
        for ids in TaskRecord.objects.values_list("worker_ids", flat=True)
        for w in ids
    )
    print(f"\n[{connection.vendor}] tasks per racer: {dict(sorted(owners.items()))}")
    assert duplicates == {}
    assert len(runs) == total
    assert leases_left == {None: total}
    assert TaskRecord.objects.filter(status=State.SUCCESSFUL, attempt=1).count() == total
    assert sum(owners.values()) == total
    assert sum(int(o.split("Processed ")[1].split(" ")[0]) for o in outputs) == total
