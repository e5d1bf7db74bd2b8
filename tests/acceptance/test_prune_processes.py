"""The pruner in real processes: a worker's supervisor takes the role, and
``offload prune`` runs beside a worker that drains the queue."""

import re
import signal

from offload.models import Lease, TaskRecord
from offload.states import State
from offload.worker.pruner import LEASE_NAME
from tests.app import tasks
from tests.helpers import wait_for
from tests.integration.test_prune import DAY, left, row

OFFLOAD = ("-m", "django", "offload")


def test_a_worker_supervisor_prunes_as_the_elected_pruner(start_process):
    old = row(State.SUCCESSFUL, 10 * DAY)
    recent = row(State.SUCCESSFUL, DAY / 2)
    proc = start_process(*OFFLOAD, "worker", "--processes", "1", "-v", "0", "--no-scheduler")
    try:
        wait_for(lambda: old not in left(), timeout=30, what="the pruner's first turn")
        assert Lease.objects.filter(name=LEASE_NAME).exists()
        assert recent in left()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # Stopped: the role is handed back for another supervisor.
    assert not Lease.objects.filter(name=LEASE_NAME).exists()


def test_the_prune_command_runs_beside_a_draining_worker(start_process):
    # Younger than RETAIN_FAILED: the worker's own pruner leaves them to the command.
    old = {row(State.FAILED, 20 * DAY) for _ in range(2000)}
    results = [tasks.sleep_then_return.enqueue(0.01, n) for n in range(1000)]
    worker = start_process(
        *OFFLOAD, "worker", "--burst", "--processes", "2", "--threads", "1", "-v", "0"
    )
    done = TaskRecord.objects.filter(status=State.SUCCESSFUL, finished_at__isnull=False)
    wait_for(lambda: done.filter(id__in=[r.id for r in results]).exists(), what="a first task")
    # Paced to take about a second, while the worker still has most tasks to run.
    prune = start_process(
        *OFFLOAD, "prune", "--older-than", "10d", "--status", "failed", "--batch-size", "100",
        options={"PRUNE_MAX_ROWS_PER_SECOND": 2000},
    )  # fmt: skip
    out, _ = prune.communicate(timeout=120)
    assert prune.returncode == 0, out
    assert "Deleted 2000 task(s) (FAILED: 2000)" in out, out
    assert worker.poll() is None, "the worker had drained before the prune ended"
    assert worker.wait(timeout=120) == 0
    assert not old & left()
    finished = TaskRecord.objects.filter(id__in=[r.id for r in results])
    assert finished.filter(status=State.SUCCESSFUL).count() == len(results)
    for result in results:
        result.refresh()
        assert result.return_value == result.args[1]


def test_ctrl_c_stops_the_prune_between_batches_and_says_how_far_it_got(start_process):
    for _ in range(3000):
        row(State.SUCCESSFUL, 20 * DAY)
    # 500 rows a second: six seconds for the lot.
    prune = start_process(
        *OFFLOAD, "prune", "--older-than", "1d", "--batch-size", "100",
        options={"PRUNE_MAX_ROWS_PER_SECOND": 500},
    )  # fmt: skip
    wait_for(lambda: len(left()) <= 2800, timeout=30, what="a few batches")
    prune.send_signal(signal.SIGINT)
    out, _ = prune.communicate(timeout=30)
    assert prune.returncode == 1, out
    match = re.search(r"Interrupted after deleting (\d+) task\(s\)", out)
    assert match, out
    assert "run it again to delete the rest" in out
    deleted = int(match.group(1))
    assert deleted % 100 == 0  # whole batches only
    assert len(left()) == 3000 - deleted > 0
