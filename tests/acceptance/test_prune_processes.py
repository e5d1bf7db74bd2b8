"""The pruner in real processes: a worker's supervisor takes the role, and
``offload prune`` runs beside a worker that drains the queue."""

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
    old = {row(State.FAILED, 40 * DAY) for _ in range(2000)}
    results = [tasks.add.enqueue(n, 2) for n in range(300)]
    worker = start_process(*OFFLOAD, "worker", "--burst", "--processes", "2", "-v", "0")
    prune = start_process(
        *OFFLOAD, "prune", "--older-than", "30d", "--status", "failed", "--batch-size", "100"
    )  # fmt: skip
    out, _ = prune.communicate(timeout=120)
    assert prune.returncode == 0, out
    assert "Deleted 2000 task(s) (FAILED: 2000)" in out, out
    assert worker.wait(timeout=120) == 0
    assert not old & left()
    finished = TaskRecord.objects.filter(id__in=[r.id for r in results])
    assert finished.filter(status=State.SUCCESSFUL).count() == len(results)
    for result in results:
        result.refresh()
        assert result.return_value == result.args[0] + 2
