"""Database outages in the middle of a drain: the workers back off, reconnect and
resume, nothing is lost, and no session is left idle in a transaction."""

import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection

from tests.acceptance.servers import private_server
from tests.conftest import ROOT

WORKER = ("-m", "django", "offload", "worker")
TOTAL = 3000


def _collect(proc) -> list[str]:
    """Read a worker's output while it runs: a full pipe would block its logging."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    proc.reader = reader
    return lines


def _end(proc, lines: list[str]) -> str:
    proc.send_signal(2)
    proc.wait(timeout=60)
    proc.reader.join(timeout=10)
    return "".join(lines)


def _django(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


ENQUEUE = (
    "from django.db import transaction; from tests.app import tasks\n"
    "with transaction.atomic():\n"
    f"    for i in range({TOTAL}): tasks.sleep_then_return.enqueue(0.02, i)\n"
)


@pytest.mark.parametrize("restart", ["once", "twice"])
def test_a_server_restart_during_a_drain_loses_nothing(child_env, start_process, restart):
    vendor = connection.vendor
    if vendor == "sqlite":
        pytest.skip("SQLite has no server to restart (see the write-lock test)")
    with private_server(vendor) as server:
        env = {**child_env, **server.env()}
        _django(env, "migrate", "-v", "0")
        _django(env, "shell", "-c", ENQUEUE)

        def done() -> int:
            return int(
                server.query("SELECT COUNT(*) FROM offload_task WHERE status = 'SUCCESSFUL'")[0][0]
            )

        proc = start_process(
            *WORKER, "--processes", "2", "--threads", "4", "-v", "0", env=server.env()
        )
        lines = _collect(proc)
        started = time.monotonic()
        while done() < TOTAL * 0.2:
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() - started < 120, "the drain never got going"
            time.sleep(0.05)
        gaps = []
        for _ in range(1 if restart == "once" else 2):
            before = done()
            begun = time.monotonic()
            server.stop()
            down = time.monotonic()
            time.sleep(1.0)  # the server stays away for a second
            server.start()
            back = time.monotonic()
            while done() <= before:
                time.sleep(0.02)
                assert time.monotonic() - back < 60, "the workers never resumed"
            gaps.append((down - begun, back - down, time.monotonic() - back))
        deadline = time.monotonic() + 300
        while done() < TOTAL:
            if time.monotonic() >= deadline:
                where = server.query(
                    "SELECT status, lease_owner, COUNT(*) FROM offload_task "
                    "WHERE status <> 'SUCCESSFUL' GROUP BY status, lease_owner"
                )
                raise AssertionError(
                    f"the drain did not finish: {where} (gaps {gaps})\n" + "".join(lines[-60:])
                )
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        statuses = dict(server.query("SELECT status, COUNT(*) FROM offload_task GROUP BY status"))
        # A session left in a transaction by the outage sits idle in it from
        # then on; a heartbeat or a claim caught between two of its statements
        # is idle for microseconds, and a running statement is not idle at all
        # (MariaDB lists even autocommit reads as transactions). Count the
        # sessions idle in a transaction for over a second.
        time.sleep(1.5)
        if vendor == "postgresql":
            idle_in_tx = server.query(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
                "AND now() - state_change > interval '1 second'"
            )[0][0]
        else:
            idle_in_tx = server.query(
                "SELECT COUNT(*) FROM information_schema.innodb_trx AS t "
                "JOIN information_schema.processlist AS p ON p.ID = t.trx_mysql_thread_id "
                "WHERE p.COMMAND = 'Sleep' AND p.TIME >= 1 "
                "AND t.trx_mysql_thread_id <> CONNECTION_ID()"
            )[0][0]
        output = _end(proc, lines)
    for stop_took, away, resumed in gaps:
        print(
            f"\n[{vendor}] server restart during a drain of {TOTAL}: stopped in {stop_took:.2f}s, "
            f"away {away:.2f}s, first task finished {resumed:.2f}s after it was back"
        )
    print(f"[{vendor}] lost {TOTAL - statuses.get('SUCCESSFUL', 0)}, statuses {statuses}, "
          f"sessions idle in a transaction {idle_in_tx}")  # fmt: skip
    assert statuses == {"SUCCESSFUL": TOTAL}, output
    assert idle_in_tx == 0
    assert proc.returncode == 0, output
    assert "Database error; retrying" in output


def test_a_long_sqlite_write_lock_is_waited_out(backend, start_process):
    if connection.vendor != "sqlite":
        pytest.skip("a whole-database write lock is SQLite's")
    from django.db import transaction

    from offload.models import TaskRecord
    from offload.states import State
    from tests.app import tasks

    with transaction.atomic():
        for i in range(TOTAL):
            tasks.sleep_then_return.enqueue(0.02, i)
    # Statements of the worker give up on a lock after 1s (30s by default), so a
    # 5s lock makes them fail, back off and try again.
    proc = start_process(*WORKER, "--processes", "2", "--threads", "4", "-v", "0",
                         env={"OFFLOAD_SQLITE_TIMEOUT": "1"})  # fmt: skip
    lines = _collect(proc)
    while TaskRecord.objects.filter(status=State.SUCCESSFUL).count() < TOTAL * 0.2:
        time.sleep(0.05)
    holder = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    locked = time.monotonic()
    before = TaskRecord.objects.filter(status=State.SUCCESSFUL).count()
    time.sleep(5)
    holder.execute("COMMIT")
    holder.close()
    released = time.monotonic()
    while TaskRecord.objects.filter(status=State.SUCCESSFUL).count() <= before:
        time.sleep(0.02)
        assert time.monotonic() - released < 60, "the workers never resumed"
    resumed = time.monotonic() - released
    while TaskRecord.objects.filter(status=State.SUCCESSFUL).count() < TOTAL:
        assert proc.poll() is None
        time.sleep(0.1)
    output = _end(proc, lines)
    print(f"\n[sqlite] a {released - locked:.1f}s write lock during a drain of {TOTAL}: "
          f"work resumed {resumed:.2f}s after it was released, lost "
          f"{TOTAL - TaskRecord.objects.filter(status=State.SUCCESSFUL).count()}")  # fmt: skip
    assert TaskRecord.objects.filter(status=State.SUCCESSFUL).count() == TOTAL
    assert "database is locked" in output
