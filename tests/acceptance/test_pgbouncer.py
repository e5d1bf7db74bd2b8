"""A worker behind PgBouncer in transaction mode: claims and writes go through
the pooler, LISTEN goes to a direct connection, and no session setting of the
worker's lands on a pooled server connection."""

import os
import signal
import statistics
import time

import pytest
from django.db import connection

from offload.models import TaskRecord
from offload.states import State
from tests.acceptance import pgbouncer
from tests.app import tasks
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PgBouncer pools PostgreSQL connections"
    ),
    pytest.mark.skipif(
        not pgbouncer.available() and not os.environ.get("CI"),
        reason="pgbouncer is not installed (scripts/test installs it when it can)",
    ),
]

WORKER = ("-m", "django", "offload", "worker", "--processes", "1", "--threads", "2")
# A poll interval this long means a task that starts at once was heard of.
BEHIND_POOLER = {"TRANSACTION_POOLER": True, "LISTEN_DATABASE": "direct", "POLL_INTERVAL": 30}


@pytest.fixture
def bouncer():
    settings = connection.settings_dict
    with pgbouncer.running(settings["HOST"], str(settings["PORT"]), settings["USER"]) as found:
        yield found


def through(bouncer, direct: bool = True) -> dict[str, str]:
    env = {"OFFLOAD_PG_PORT": str(bouncer.port)}
    if direct:
        env["OFFLOAD_TEST_PG_DIRECT_PORT"] = str(connection.settings_dict["PORT"])
    return env


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    return output


def _transactions_through(bouncer) -> int:
    name = connection.settings_dict["NAME"]
    for line in bouncer.admin("SHOW STATS").splitlines():
        fields = line.split("|")
        if fields[0] == name:
            return int(fields[1])  # total_xact_count
    return 0


def test_a_worker_behind_pgbouncer_claims_through_it_and_hears_of_tasks_directly(
    bouncer, start_process
):
    before = _transactions_through(bouncer)
    proc = start_process(*WORKER, options=BEHIND_POOLER, env=through(bouncer))
    warm = tasks.add.enqueue(0, 0)
    wait_for(lambda: TaskRecord.objects.get(pk=warm.id).status == State.SUCCESSFUL)
    ids = []
    for i in range(6):
        time.sleep(0.8)  # idle long enough that a poll would be far off
        ids.append(tasks.add.enqueue(i, 1).id)
    wait_for(lambda: TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == 6)
    waits = [
        (started - enqueued).total_seconds() * 1000
        for started, enqueued in TaskRecord.objects.filter(pk__in=ids).values_list(
            "started_at", "enqueued_at"
        )
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN %%'"
        )
        listening = cursor.fetchone()[0]
    output = _stop(proc)
    p50 = statistics.median(waits)
    print(f"\n[pgbouncer] enqueue-to-start p50 {p50:.1f} ms, max {max(waits):.1f} ms")
    assert "LISTEN/NOTIFY on direct" in output
    assert listening == 1  # the worker process's one direct connection
    assert p50 < 150, waits  # heard of through NOTIFY: its next poll was seconds away
    # The claims and outcome writes went through the pooler.
    assert _transactions_through(bouncer) - before >= 2 * len(ids)


def test_no_session_setting_of_the_worker_reaches_the_pool(bouncer, start_process):
    proc = start_process(*WORKER, options=BEHIND_POOLER, env=through(bouncer))
    ids = [tasks.add.enqueue(i, i).id for i in range(40)]
    wait_for(lambda: TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == 40)
    _stop(proc)
    # Every server connection the pool holds answers with PostgreSQL's default:
    # the worker's planner setting (enable_sort = off) stayed off them.
    import psycopg

    name = connection.settings_dict["NAME"]
    seen = set()
    conns = [
        psycopg.connect(
            host="127.0.0.1", port=bouncer.port, user="postgres", dbname=name, autocommit=False
        )
        for _ in range(4)
    ]
    try:
        for conn in conns:  # each in a transaction: four different server connections
            seen.add(conn.execute("SHOW enable_sort").fetchone()[0])
    finally:
        for conn in conns:
            conn.close()
    assert seen == {"on"}


def test_without_a_direct_alias_a_worker_behind_the_pooler_polls(bouncer, start_process):
    options = {"TRANSACTION_POOLER": True, "POLL_INTERVAL": 0.2}
    proc = start_process(*WORKER, options=options, env=through(bouncer, direct=False))
    ids = [tasks.add.enqueue(i, i).id for i in range(5)]
    wait_for(lambda: TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == 5)
    output = _stop(proc)
    assert "polling, every 0.2s at most when idle" in output
