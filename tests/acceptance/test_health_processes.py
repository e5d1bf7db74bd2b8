"""``offload health`` and ``offload status`` against a real worker, from outside:
the probes say yes while it runs and no once it was killed."""

import json
import os
import signal
import time
from pathlib import Path

from django.db import connection

from offload.models import WorkerRecord
from tests.acceptance.processes import children_of
from tests.helpers import wait_for

MANAGE = ("-m", "django", "offload")
WORKER = (*MANAGE, "worker", "--processes", "1", "--threads", "1", "-v", "0")


def probe(start_process, *argv: str, options: dict[str, object]) -> tuple[int, str]:
    """Run ``offload *argv`` in its own process, as a probe would."""
    proc = start_process(*MANAGE, *argv, options=options)
    output, _ = proc.communicate(timeout=60)
    return proc.returncode, output


def test_health_follows_a_worker_until_it_is_killed(start_process, tmp_path: Path):
    beat = tmp_path / "worker.heartbeat"
    # Short beats, so a dead worker's heartbeat is stale after a second.
    quick = {"HEARTBEAT_SECONDS": 0.25, "LEASE_SECONDS": 1, "HEARTBEAT_FILE": str(beat)}
    code, output = probe(start_process, "health", "--worker", options=quick)
    assert code == 1, output

    worker = start_process(*WORKER, "--name", "probed", "--queue", "default", options=quick)
    wait_for(lambda: WorkerRecord.objects.filter(id__startswith="probed:").exists())
    wait_for(beat.exists, what="the heartbeat file")
    code, output = probe(
        start_process, "health", "--worker", "--queue", "default", "--json", options=quick
    )
    assert code == 0, output
    assert json.loads(output)["healthy"] is True
    code, output = probe(start_process, "health", "--worker", "--queue", "emails", options=quick)
    assert code == 1, output  # it serves default only
    code, output = probe(start_process, "health", "--liveness", options=quick)
    assert code == 0, output
    first = beat.stat().st_mtime
    wait_for(lambda: beat.stat().st_mtime > first, what="the heartbeat file to be written again")
    code, output = probe(start_process, "status", "--json", options=quick)
    assert code == 0, output
    [group] = json.loads(output)["workers"]
    assert group["process_count"] == 1
    assert group["stale"] is False

    # The whole worker dies at once: frozen first, so the task process cannot
    # notice its supervisor is gone and remove its row.
    pids = [*children_of(worker.pid), worker.pid]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    worker.wait()
    killed = time.monotonic()
    assert beat.exists()  # nobody removed it: its age tells
    time.sleep(1.5)
    code, output = probe(start_process, "health", "--worker", "--json", options=quick)
    assert code == 1, output
    assert json.loads(output)["checks"][1]["detail"] == "no live worker process"
    code, output = probe(start_process, "health", "--liveness", "--max-age", "1", options=quick)
    assert code == 1, output
    assert "written" in output
    print(f"\nhealth --worker said no {time.monotonic() - killed:.2f}s after kill -9 (lease 1s)")


def test_a_stopped_worker_removes_its_heartbeat_file(start_process, tmp_path: Path):
    beat = tmp_path / "worker.heartbeat"
    quick = {"HEARTBEAT_SECONDS": 0.25, "LEASE_SECONDS": 1, "HEARTBEAT_FILE": str(beat)}
    worker = start_process(*WORKER, options=quick)
    wait_for(beat.exists, what="the heartbeat file")
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert not beat.exists()
    code, output = probe(start_process, "health", "--liveness", options=quick)
    assert code == 1, output
    assert "does not exist" in output


def test_status_watch_redraws_until_ctrl_c(start_process):
    proc = start_process(*MANAGE, "status", "--watch", "0.2", options={})
    assert proc.stdout is not None
    frames = 0
    deadline = time.monotonic() + 30
    while frames < 2 and time.monotonic() < deadline:
        frames += proc.stdout.readline().startswith("offload status:")
    assert frames == 2
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "Traceback" not in output


def test_exit_codes_on_the_command_line(start_process, tmp_path: Path):
    code, output = probe(start_process, "health", "--max-lag", "soon", options={})
    assert code == 2, output
    assert "--max-lag: not a number: 'soon'" in output
    code, output = probe(start_process, "health", "--backend", "nope", options={})
    assert code == 2, output
    code, output = probe(start_process, "health", "--liveness", options={})
    assert code == 2, output
    assert "needs --heartbeat-file" in output
    code, output = probe(start_process, "health", options={})
    assert code == 0, output


def test_a_database_that_does_not_answer_exits_3(start_process, tmp_path: Path):
    # Each engine's way to a database that is not there: a port nothing
    # listens on, a file in a directory that does not exist.
    env = {"OFFLOAD_PG_PORT": "1", "OFFLOAD_MARIADB_PORT": "1"}
    if connection.vendor == "sqlite":
        env["OFFLOAD_TEST_DB_NAME"] = str(tmp_path / "missing" / "db.sqlite3")
    proc = start_process(*MANAGE, "health", "--worker", "--json", env=env)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, output
    found = json.loads(output)
    assert found["exit_code"] == 3
    assert "does not answer" in found["checks"][0]["detail"]
