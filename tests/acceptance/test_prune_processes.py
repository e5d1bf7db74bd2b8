"""The pruner in real processes: a worker's supervisor takes the role, and
``offload prune`` runs beside a worker that drains the queue."""

import re
import signal
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from offload.models import Lease, TaskRecord
from offload.states import State
from offload.store.vacuum import DEAD_FLOOR
from offload.worker.pruner import LEASE_NAME
from tests.app import tasks
from tests.helpers import wait_for
from tests.integration.test_prune import DAY, left, row
from tests.integration.test_vacuum import stats as vacuum_stats

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


def test_the_prune_command_runs_beside_a_working_worker(start_process):
    # Younger than RETAIN_FAILED: the worker's own pruner leaves them to the command.
    old = {row(State.FAILED, 20 * DAY) for _ in range(2000)}
    worker = start_process(*OFFLOAD, "worker", "--processes", "2", "-v", "0", "--no-scheduler")
    first = tasks.add.enqueue(1, 2)
    wait_for(lambda: first.refresh() or first.is_finished, timeout=60, what="the worker")
    # Paced to take ten seconds; tasks are enqueued, claimed and run all along.
    prune = start_process(
        *OFFLOAD, "prune", "--older-than", "10d", "--status", "failed", "--batch-size", "50",
        options={"PRUNE_MAX_ROWS_PER_SECOND": 200},
    )  # fmt: skip
    results, ran_during = [first], 0

    def done() -> int:
        ids = [r.id for r in results]
        return TaskRecord.objects.filter(status=State.SUCCESSFUL, id__in=ids).count()

    while prune.poll() is None:
        results += [tasks.add.enqueue(n, 2) for n in range(5)]
        time.sleep(0.1)
        if prune.poll() is None:
            ran_during = done()
    out, _ = prune.communicate(timeout=120)
    assert prune.returncode == 0, out
    assert "Deleted 2000 task(s) (FAILED: 2000)" in out, out
    assert ran_during > 1, "no task ran while the prune did"
    wait_for(lambda: done() == len(results), timeout=60, what="the last tasks")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert not old & left()
    for result in results:
        result.refresh()
        assert result.return_value == result.args[0] + 2


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


def test_the_elected_pruner_vacuums_the_table_where_autovacuum_is_off(start_process):
    if connection.vendor != "postgresql":
        pytest.skip("dead row versions wait for VACUUM on PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE offload_task SET (autovacuum_enabled = false)")
    try:
        old = timezone.now() - timedelta(days=10)
        TaskRecord.objects.bulk_create(
            TaskRecord(backend="default", task_path="tests.app.tasks.noop",
                       status=State.SUCCESSFUL, available_at=old, enqueued_at=old,
                       finished_at=old)
            for _ in range(2 * DEAD_FLOOR)
        )  # fmt: skip
        _, vacuums = vacuum_stats()
        proc = start_process(*OFFLOAD, "worker", "--processes", "1", "-v", "1", "--no-scheduler")
        try:
            wait_for(lambda: vacuum_stats()[1] > vacuums, timeout=60, what="the pruner's VACUUM")
            assert not TaskRecord.objects.exists()
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=30)[0]
        assert "Vacuumed the task table" in output, output
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE offload_task RESET (autovacuum_enabled)")
