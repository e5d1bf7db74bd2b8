"""``manage.py offload status`` and ``offload health``: their JSON shapes and exit
codes, on every database."""

import io
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from offload.models import Queue, Schedule, TaskRecord, WorkerRecord
from offload.states import State
from offload.store import reads
from offload.tables import tables_message, unapplied
from tests.app import tasks
from tests.helpers import run_offload


def health(*argv: str) -> tuple[int, dict[str, Any]]:
    code, text = run_offload("health", "--json", *argv)
    found = json.loads(text)
    assert found["exit_code"] == code
    assert found["healthy"] is (code == 0)
    return code, found


def worker_row(name: str, *, age: float = 0, queues: str = "*", backend: str = "default") -> None:
    now = timezone.now()
    WorkerRecord.objects.create(
        id=f"{name}/p1", name=f"{name}/p1", hostname="web-1", pid=4242, supervisor_pid=4241,
        backend=backend, queues=queues, threads=4, started_at=now - timedelta(seconds=age),
        heartbeat_at=now - timedelta(seconds=age),
    )  # fmt: skip


def due_for(seconds: float, queue: str = "default", priority: int = 0) -> TaskRecord:
    result = tasks.add.using(queue_name=queue, priority=priority).enqueue(1, 2)
    TaskRecord.objects.filter(pk=int(result.id)).update(
        available_at=timezone.now() - timedelta(seconds=seconds)
    )
    return TaskRecord.objects.get(pk=int(result.id))


def failed(count: int, *, ago: float = 0) -> None:
    for _ in range(count):
        result = tasks.add.enqueue(1, 2)
        TaskRecord.objects.filter(pk=int(result.id)).update(
            status=State.FAILED, finished_at=timezone.now() - timedelta(seconds=ago)
        )


# -- health -------------------------------------------------------------------------


def test_an_empty_migrated_database_is_healthy():
    code, found = health()
    assert code == 0
    assert found["version"] == 1
    # PostgreSQL also looks for what holds back VACUUM (a warning at most).
    vacuum = ["vacuum"] if connection.vendor == "postgresql" else []
    assert [c["name"] for c in found["checks"]] == ["database", *vacuum]
    assert all(c["ok"] and not c["warning"] for c in found["checks"])
    assert unapplied("default") == []


def test_text_output_says_each_check():
    code, text = run_offload("health", "--max-lag", "60")
    assert code == 0
    assert text.splitlines()[0] == "healthy"
    assert "ok   lag: no task due" in text


def test_worker_check_needs_a_live_worker_for_each_queue():
    assert health("--worker")[0] == 1
    worker_row("w1", queues="default,emails")
    code, found = health("--worker", "--queue", "default", "--queue", "emails")
    assert code == 0, found
    code, found = health("--worker", "--queue", "reports")
    assert code == 1
    assert found["checks"][1]["detail"] == "no live worker serves reports"


def test_a_worker_with_an_old_heartbeat_does_not_count(backend):
    worker_row("old", age=backend.config.lease_seconds + 5)
    assert health("--worker")[0] == 1
    worker_row("other-backend", backend="queue")
    assert health("--worker")[0] == 1


def test_excluded_queues_are_not_served():
    worker_row("w", queues="*,-reports")
    assert health("--worker", "--queue", "emails")[0] == 0
    assert health("--worker", "--queue", "reports")[0] == 1


def test_lag_is_the_oldest_due_task_whatever_its_priority():
    due_for(5, priority=50)
    due_for(300, priority=-20)
    future = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)
    assert future.id
    code, found = health("--max-lag", "120")
    assert code == 1
    lag = found["checks"][1]
    assert lag["name"] == "lag"
    assert lag["limit"] == 120
    assert 299 <= lag["value"] < 400
    assert health("--max-lag", "600")[0] == 0


def test_lag_of_chosen_queues_only():
    due_for(300, queue="reports")
    due_for(2, queue="emails")
    assert health("--max-lag", "60", "--queue", "emails")[0] == 0
    assert health("--max-lag", "60", "--queue", "emails", "--queue", "reports")[0] == 1


def test_running_tasks_are_not_lag():
    task = due_for(300)
    TaskRecord.objects.filter(pk=task.pk).update(status=State.RUNNING)
    assert health("--max-lag", "60")[0] == 0


def test_too_many_failures_in_the_window():
    failed(3)
    failed(5, ago=7200)  # outside the window
    assert health("--max-failures", "3")[0] == 0
    code, found = health("--max-failures", "2")
    assert code == 1
    assert found["checks"][1]["value"] == 3  # counted up to the limit + 1
    assert health("--max-failures", "2", "--window", "60")[0] == 1
    assert health("--max-failures", "7", "--window", "86400")[0] == 1
    assert health("--max-failures", "8", "--window", "86400")[0] == 0


def test_the_oldest_due_read_walks_priorities():
    due_for(10, priority=100)
    oldest = due_for(40, priority=-100)
    due_for(20, priority=3)
    assert reads.oldest_due("default", timezone.now()) == oldest.available_at


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--backend", "nope"), "--backend 'nope': no such backend"),
        (("--liveness",), "--liveness needs --heartbeat-file"),
        (("--liveness", "--heartbeat-file", "x", "--worker"), "drop --worker"),
        (("--max-age", "3"), "--heartbeat-file and --max-age go with --liveness"),
        (("--max-lag", "-1"), "must be 0 or more"),
        (("--max-failures", "many"), "not a number"),
        (("--max-lag", "5", "--queue", "emials"), r"--queue emials: not in TASKS\['default'\]"),
    ],
)
def test_usage_errors_exit_2(argv, message):
    with pytest.raises(CommandError, match=message) as caught:
        call_command("offload", "health", *argv, stdout=io.StringIO(), stderr=io.StringIO())
    if not any(flag in argv for flag in ("--max-lag", "--max-failures")) or "--queue" in argv:
        assert caught.value.returncode == 2


# -- liveness -------------------------------------------------------------------------


def test_liveness_reads_the_heartbeat_file_only(tmp_path: Path):
    path = tmp_path / "heartbeat"
    code, found = health("--liveness", "--heartbeat-file", str(path))
    assert code == 1
    assert found["checks"][0]["detail"] == f"{path} does not exist"
    path.write_text("now")
    assert health("--liveness", "--heartbeat-file", str(path), "--max-age", "10")[0] == 0
    old = path.stat().st_mtime - 60
    os.utime(path, (old, old))
    code, found = health("--liveness", "--heartbeat-file", str(path), "--max-age", "10")
    assert code == 1
    assert found["checks"][0]["value"] >= 60


# -- status -----------------------------------------------------------------------------


def test_status_json_shape():
    due_for(30, queue="emails")
    running = due_for(1)
    worker_row("w1", queues="default,emails")
    worker_row("w0", age=3600)
    TaskRecord.objects.filter(pk=running.pk).update(status=State.RUNNING, lease_owner="w1/p1")
    Queue.objects.create(name="reports", paused_at=timezone.now(), paused_by="ops")
    failed(2)
    Schedule.objects.create(
        name="nightly", backend="default", task_path="tests.app.tasks.noop", cron="0 3 * * *",
        next_fire_at=timezone.now() + timedelta(hours=2),
    )  # fmt: skip
    code, text = run_offload("status", "--json")
    assert code == 0
    data = json.loads(text)
    assert set(data) == {
        "version", "backend", "database", "generated_at", "lease_seconds", "queues", "workers",
        "live_processes", "stale_processes", "failures", "schedules", "vacuum", "blocked",
        "waiting",
    }  # fmt: skip
    assert data["version"] == 1
    assert data["backend"] == "default"
    queues = {q["name"]: q for q in data["queues"]}
    assert set(queues) >= {"default", "emails", "reports"}
    assert (queues["emails"]["ready"], queues["emails"]["due"]) == (1, 1)
    assert queues["emails"]["oldest_due_age_seconds"] >= 29
    assert queues["default"]["running"] == 1
    assert queues["reports"]["paused"] is True
    assert queues["reports"]["paused_by"] == "ops"
    assert (data["live_processes"], data["stale_processes"]) == (1, 1)
    process = next(p for w in data["workers"] for p in w["processes"] if p["id"] == "w1/p1")
    assert process["current_tasks"][0]["id"] == running.pk
    assert process["stale"] is False
    assert data["failures"] == {"window_seconds": 3600, "count": 2, "capped": False}
    [nightly] = data["schedules"]
    assert nightly["name"] == "nightly"
    assert 7000 < nightly["next_fire_in_seconds"] <= 7200


def test_status_text():
    due_for(90, queue="emails")
    worker_row("w1")
    code, text = run_offload("status")
    assert code == 0
    assert "Queues:" in text
    assert "emails" in text
    assert "1m30s" in text
    assert "Workers: 1 live, 0 stale process(es)" in text
    assert "web-1 pid 4241: 1x4" in text
    assert "Failures in the last hour: 0" in text
    assert "Schedules: none" in text


# -- before migrate ---------------------------------------------------------------------


@pytest.fixture
def unmigrated() -> Iterator[None]:
    call_command("migrate", "offload", "zero", verbosity=0)
    try:
        yield
    finally:
        call_command("migrate", verbosity=0)


def test_an_unmigrated_database_exits_3(unmigrated):
    code, found = health("--worker", "--max-lag", "5")
    assert code == 3
    [check] = found["checks"]
    assert check["name"] == "database"
    assert check["ok"] is False
    assert check["detail"].startswith(tables_message("default"))


def test_a_database_one_migration_behind_exits_3():
    """The tables are there but a migration on disk is not applied, as after an
    upgrade that brings one (offload has one migration: it is unrecorded)."""
    recorder = MigrationRecorder(connection)
    recorder.record_unapplied("offload", "0001_initial")
    try:
        code, found = health()
        assert code == 3
        assert "(not applied: 0001_initial)" in found["checks"][0]["detail"]
    finally:
        recorder.record_applied("offload", "0001_initial")


def test_status_before_migrate_says_run_migrate(unmigrated):
    with pytest.raises(CommandError) as caught:
        call_command("offload", "status", stdout=io.StringIO())
    assert str(caught.value) == tables_message("default")


def test_a_watched_status_outlives_a_database_error(unmigrated, backend):
    from offload.operations.cli import _status_frame

    text = _status_frame(backend, as_json=False, watching=True)
    assert text.startswith("offload status: cannot read the database: ")
    found = json.loads(_status_frame(backend, as_json=True, watching=True))
    assert set(found) == {"version", "error"}
    with pytest.raises(DatabaseError):
        _status_frame(backend, as_json=False, watching=False)
