"""The bloat guard's warning: a transaction that holds back VACUUM on PostgreSQL
is named by ``offload status``, ``offload health`` and the dashboard, and
nothing is said without one, or on the engines that have no such thing."""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from offload.store import vacuum
from tests.admin_factory import make_user
from tests.helpers import override_options, run_offload

APPLICATION = "offload-test-snapshot"
THRESHOLD = 1

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="only PostgreSQL's VACUUM can be held back"
)


def dashboard() -> dict[str, Any]:
    client = Client()
    client.force_login(
        User.objects.filter(username="root").first() or make_user("root", superuser=True)
    )
    found: dict[str, Any] = client.get(reverse("admin:offload_dashboard_data")).json()["vacuum"]
    return found


class Snapshot:
    """A second session that holds a snapshot open, as an idle ``psql`` would."""

    def __init__(self) -> None:
        self.raw = connection.get_new_connection(connection.get_connection_params())
        self.raw.autocommit = True
        self.raw.execute(f"SET application_name = '{APPLICATION}'")
        self.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        self.raw.execute("SELECT 1")
        self.pid: int = self.raw.info.backend_pid

    def end(self) -> None:
        self.raw.execute("COMMIT")
        self.raw.close()


@pytest.fixture
def snapshot() -> Iterator[Snapshot]:
    held = Snapshot()
    try:
        yield held
    finally:
        if not held.raw.closed:
            held.end()


def pids(blockers: list[dict[str, Any]]) -> list[int | None]:
    return [b["pid"] for b in blockers]


@postgres_only
def test_a_snapshot_held_open_is_named_until_it_ends(snapshot):
    time.sleep(THRESHOLD + 0.2)
    with override_options(VACUUM_BLOCKER_WARNING=THRESHOLD):
        [found] = [b for b in vacuum.vacuum_blockers("default", THRESHOLD) if b.pid == snapshot.pid]
        assert found.kind == "transaction"
        assert found.application_name == APPLICATION
        assert found.state == "idle in transaction"
        assert found.age_seconds is not None
        assert found.age_seconds >= THRESHOLD
        assert found.since is not None
        assert found.query_start is not None
        assert found.query_start >= found.since

        code, text = run_offload("status", "--json")
        section = json.loads(text)["vacuum"]
        assert (code, section["checked"], section["warning_seconds"]) == (0, True, THRESHOLD)
        [entry] = [b for b in section["blockers"] if b["pid"] == snapshot.pid]
        assert entry["application_name"] == APPLICATION
        assert entry["age_seconds"] >= THRESHOLD
        assert entry["query_start"] == found.query_start.isoformat()

        code, text = run_offload("status")
        assert "WARNING: held back VACUUM for more than 1s" in text
        assert f"transaction of pid {snapshot.pid} ({APPLICATION}, user " in text

        # A warning: the probe still passes.
        code, text = run_offload("health", "--json")
        assert code == 0
        [check] = [c for c in json.loads(text)["checks"] if c["name"] == "vacuum"]
        assert (check["ok"], check["warning"], check["limit"]) == (True, True, THRESHOLD)
        assert f"pid {snapshot.pid} ({APPLICATION}" in check["detail"]
        assert check["value"] >= THRESHOLD
        code, text = run_offload("health")
        assert code == 0
        assert "  WARN vacuum: held back VACUUM: transaction of pid" in text

        assert snapshot.pid in pids(dashboard()["blockers"])

        snapshot.end()
        after = json.loads(run_offload("status", "--json")[1])["vacuum"]
        assert snapshot.pid not in pids(after["blockers"])
        assert snapshot.pid not in pids(dashboard()["blockers"])
        code, text = run_offload("health", "--json")
        [check] = [c for c in json.loads(text)["checks"] if c["name"] == "vacuum"]
        assert (code, check["warning"]) == (0, False)


@postgres_only
def test_a_younger_snapshot_than_the_threshold_is_not_named(snapshot):
    assert snapshot.pid not in [b.pid for b in vacuum.vacuum_blockers("default", 3600)]


def test_nothing_is_said_without_a_snapshot_held_open():
    with override_options(VACUUM_BLOCKER_WARNING=THRESHOLD):
        section = json.loads(run_offload("status", "--json")[1])["vacuum"]
        checks = [c["name"] for c in json.loads(run_offload("health", "--json")[1])["checks"]]
        text = run_offload("status")[1]
        shown = dashboard()
    # The test's own session is never named (it is the probe's).
    assert section["blockers"] == shown["blockers"] == []
    if connection.vendor == "postgresql":
        assert section["checked"] is shown["checked"] is True
        assert checks == ["database", "vacuum"]
        assert "Vacuum: nothing has held it back for more than 1s" in text
    else:
        # SQLite and MariaDB have no VACUUM to hold back: nothing is read.
        assert section["checked"] is shown["checked"] is False
        assert checks == ["database"]
        assert "acuum" not in text


def test_none_turns_the_warning_off():
    with override_options(VACUUM_BLOCKER_WARNING=None):
        section = json.loads(run_offload("status", "--json")[1])["vacuum"]
        checks = [c["name"] for c in json.loads(run_offload("health", "--json")[1])["checks"]]
    assert section == {"warning_seconds": None, "checked": False, "blockers": []}
    assert checks == ["database"]
