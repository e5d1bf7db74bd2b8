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


def test_a_warning_passes_and_says_warn():
    report = health.Report()
    report.add(health.Check("vacuum", True, "held back", 700.0, 600, warning=True))
    assert report.code == health.HEALTHY
    assert report.as_text().splitlines() == ["healthy", "  WARN vacuum: held back"]
    assert report.as_dict()["checks"][0]["warning"] is True


BLOCKER = {
    "pid": None, "client": None, "query_start": None, "since": None, "xmin_age": 12,
}  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        (
            {"kind": "transaction", "pid": 77, "name": "app", "application_name": "psql",
             "client": "10.0.0.5", "state": "idle in transaction", "age_seconds": 4000,
             "since": "2026-12-03T08:00:00+00:00", "query_start": "2026-12-03T08:00:01+00:00"},
            "transaction of pid 77 (psql, user app, from 10.0.0.5), idle in transaction, "
            "open 1h06m, began 2026-12-03T08:00:00+00:00, "
            "last query started 2026-12-03T08:00:01+00:00",
        ),
        (
            {"kind": "prepared transaction", "name": "tx-1", "application_name": "app",
             "state": "prepared", "age_seconds": 700},
            "prepared transaction 'tx-1' (owner app), 11m40s old",
        ),
        (
            {"kind": "replication slot", "name": "standby_1", "application_name": "physical",
             "state": "inactive", "age_seconds": None},
            "inactive physical replication slot 'standby_1', an unknown time",
        ),
    ],
)  # fmt: skip
def test_what_holds_vacuum_back_is_named_in_one_line(entry, text):
    assert status_text.describe_blocker({**BLOCKER, **entry}) == text


def test_the_vacuum_section_is_shown_only_where_it_was_checked():
    off = {"warning_seconds": 600, "checked": False, "blockers": []}
    assert status_text._vacuum({"vacuum": off}) == []
    quiet = {**off, "checked": True}
    assert status_text._vacuum({"vacuum": quiet})[1] == (
        "Vacuum: nothing has held it back for more than 10m00s"
    )
