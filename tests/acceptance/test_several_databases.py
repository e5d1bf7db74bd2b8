"""Queues on two databases: one real ``offload worker --backend default,separate``
runs the tasks of both, holds the elected roles on each database, fires each
backend's schedules, and serves the metrics of both; ``offload status`` and the
Prometheus view show both backends."""

import json
import signal
import subprocess
import sys

import pytest

from offload.models import Lease, Schedule, ScheduleFire, TaskRecord, WorkerRecord
from offload.states import State
from tests.acceptance.test_metrics_port import answers, free_port, scrape, total
from tests.app import tasks
from tests.helpers import wait_for

# On each test, not the module: the suite's own mark on every test would win.
BOTH_DATABASES = pytest.mark.django_db(transaction=True, databases=["default", "queue"])

WORKER = ("-m", "django", "offload", "worker", "--processes", "1", "--threads", "2")
ADD = "tests.app.tasks.add"
BOTH = ("default", "queue")  # the databases of the backends "default" and "separate"


def _finished(database: str, task: str = ADD) -> bool:
    rows = TaskRecord.objects.using(database).filter(task_path=task)
    return rows.exists() and not rows.exclude(status=State.SUCCESSFUL).exists()


@BOTH_DATABASES
def test_one_worker_runs_the_tasks_of_two_databases(start_process, child_env):
    port = free_port()
    for database, alias in zip(BOTH, ("default", "separate"), strict=True):
        Schedule.objects.using(database).create(
            name="tick", backend=alias, task_path="tests.app.tasks.noop", interval=1
        )
    worker = start_process(*WORKER, "--backend", "default,separate", "--metrics-port", str(port))
    first = tasks.add.enqueue(1, 2)
    second = tasks.add.using(backend="separate").enqueue(3, 4)
    for database in BOTH:
        wait_for(lambda database=database: _finished(database), what=f"the task on {database}")
    assert TaskRecord.objects.using("default").get(pk=first.id).return_value == 3
    assert TaskRecord.objects.using("queue").get(pk=second.id).return_value == 7

    # Each database has the worker's process of its own backend, and the
    # supervisor holds the elected roles of each database.
    for database, alias in zip(BOTH, ("default", "separate"), strict=True):
        rows = WorkerRecord.objects.using(database)
        assert set(rows.values_list("backend", flat=True)) == {alias}
        owners = set(
            Lease.objects.using(database).filter(name="rescuer").values_list("owner", flat=True)
        )
        assert len(owners) == 1, (database, owners)
        holder = owners.pop()
        assert rows.get().id.startswith(holder + "/"), (holder, rows.get().id)
    # Each backend's schedules fire, from its own group's scheduler.
    for database in BOTH:
        wait_for(
            lambda database=database: ScheduleFire.objects.using(database).exists(),
            what=f"a tick on {database}",
        )

    wait_for(lambda: answers(port), what="the metrics port")
    # Counts arrive with each process's next report (a quarter of a second).
    for alias in ("default", "separate"):
        wait_for(
            lambda alias=alias: (
                total(scrape(port), "offload_worker_tasks_succeeded_total", backend=alias, task=ADD)
                == 1
            ),
            what=f"the counts of {alias} on the port",
        )
    assert set(scrape(port)["offload_worker_tasks_rescued_total"]) == {
        (("backend", "default"),),
        (("backend", "separate"),),
    }

    status = subprocess.run(
        [sys.executable, "-m", "django", "offload", "status", "--all-backends", "--json"],
        env=child_env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    shown = json.loads(status.stdout)
    assert [b["backend"] for b in shown["backends"]] == ["default", "separate"]
    assert [b["database"] for b in shown["backends"]] == list(BOTH)
    for each in shown["backends"]:
        assert each["live_processes"] == 1, each
        assert [w["backend"] for w in each["workers"]] == [each["backend"]]

    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert "backend   default -> " in output
    assert "backend   separate -> " in output
    assert "Traceback" not in output, output
    # Stopping hands back the roles on both databases.
    for database in BOTH:
        assert not Lease.objects.using(database).filter(name="rescuer").exists(), database


@BOTH_DATABASES
def test_a_burst_over_every_backend_drains_both_databases(start_process):
    tasks.add.enqueue(1, 1)
    tasks.add.using(backend="separate").enqueue(2, 2)
    worker = start_process(*WORKER, "--all-backends", "--burst", "-v", "1")
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, output
    for database in BOTH:
        assert _finished(database), database
    assert "Processed 2 task(s): 2 successful" in output
