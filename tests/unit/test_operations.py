"""The parts of ``offload status`` and ``offload health`` that need no database."""

import os
import time
from pathlib import Path

import pytest

from offload.operations import health, status_text
from offload.store.reads import serves
from offload.worker.heartbeat_file import HeartbeatFile


@pytest.mark.parametrize(
    ("label", "queue", "expected"),
    [
        ("*", "emails", True),
        ("*,-emails", "emails", False),
        ("*,-emails", "default", True),
        ("default,emails", "emails", True),
        ("default", "emails", False),
        ("default", "-default", False),
    ],
)
def test_which_queues_a_worker_label_serves(label, queue, expected):
    assert serves(label, queue) is expected


def test_the_heartbeat_file_is_written_at_most_every_interval(tmp_path: Path):
    path = tmp_path / "beat"
    beat = HeartbeatFile(str(path), interval=5)
    beat.beat(100.0)
    assert path.read_text().split()[1] == str(os.getpid())
    os.utime(path, (1, 1))
    beat.beat(104.0)  # too soon: not written
    assert path.stat().st_mtime == 1
    beat.beat(105.0)
    assert path.stat().st_mtime > time.time() - 60
    assert [p.name for p in tmp_path.iterdir()] == ["beat"]  # no temporary file left
    beat.remove()
    assert not path.exists()


def test_no_heartbeat_file_by_default(tmp_path: Path):
    beat = HeartbeatFile("", interval=5)
    beat.beat(0.0)
    beat.remove()
    assert beat.path is None


def test_an_unwritable_heartbeat_file_is_said_once(tmp_path: Path, caplog):
    beat = HeartbeatFile(str(tmp_path / "missing-dir" / "beat"), interval=0.01)
    beat.beat(1.0)
    beat.beat(2.0)
    assert len([r for r in caplog.records if "heartbeat file" in r.getMessage()]) == 1


def test_liveness_of_a_fresh_and_an_old_file(tmp_path: Path):
    path = tmp_path / "beat"
    assert health.liveness(str(path), 10).code == health.UNHEALTHY
    path.write_text("x")
    report = health.liveness(str(path), 10)
    assert report.code == health.HEALTHY
    assert report.as_dict()["checks"][0]["name"] == "heartbeat_file"
    os.utime(path, (time.time() - 30, time.time() - 30))
    assert health.liveness(str(path), 10).code == health.UNHEALTHY


def test_the_report_takes_the_worst_code():
    report = health.Report()
    report.add(health.Check("a", True, "fine"))
    assert report.code == health.HEALTHY
    report.add(health.Check("b", False, "no"))
    report.add(health.Check("c", False, "down"), failing=health.DATABASE)
    assert report.code == health.DATABASE
    assert report.as_text().splitlines() == [
        "database problem",
        "  ok   a: fine",
        "  FAIL b: no",
        "  FAIL c: down",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.4, "0s"), (59, "59s"), (90, "1m30s"), (3700, "1h01m"), (90000, "1d01h")],
)
def test_ages_in_status_text(seconds, text):
    assert status_text._seconds(seconds) == text
