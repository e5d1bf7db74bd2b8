"""An index migration of the task table runs while a real worker drains tasks, and
never makes an enqueue, a claim or a completion wait for it (the indexes are
built and dropped CONCURRENTLY on PostgreSQL, with LOCK=NONE on MariaDB). The
migration is the tests' own (tests/online_index_migration.py), made of
offload.online_indexes' operations."""

import threading
import time

import pytest
from django.db import connection, connections
from django.tasks import TaskResultStatus

from tests import online_index_migration as online
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker", "--processes", "1", "--threads", "2", "-v", "0")
# Finished rows the index builds have to read: enough that a build holding
# a lock would hold it for far longer than the bounds below.
FINISHED_ROWS = 1_500_000
# The longest any other session may wait on a lock while the migration runs,
# and the longest an enqueue may take (the machine may be loaded).
MOST_LOCK_WAIT = 0.3
MOST_ENQUEUE = 1.0


# Per engine: the numbers 1 to n as rows; this session's id; and the sessions
# of this database, other than this one and the migration's, waiting for a
# lock (on MariaDB, a table's metadata lock, which an index change that is not
# online holds against writers).
NUMBERS = {"postgresql": "generate_series(1, {rows})", "mysql": "seq_1_to_{rows}"}
SESSION = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
LOCK_WAITERS = {
    "postgresql": (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid NOT IN (pg_backend_pid(), %s)"
    ),
    "mysql": (
        "SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
        "AND state LIKE 'Waiting for%%lock%%' AND id NOT IN (CONNECTION_ID(), %s)"
    ),
}


def fill_finished(rows: int) -> None:
    numbers = NUMBERS[connection.vendor].format(rows=int(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO offload_task (task_path, backend, queue_name, priority, status, "
            "is_async, available_at, enqueued_at, finished_at, attempt, max_attempts, "
            "worker_ids, args, kwargs, errors) SELECT 'tests.app.tasks.noop', 'default', "
            "'default', 0, 'SUCCESSFUL', false, now(), now(), now(), 1, 1, '[]', '[]', '{}', "
            f"'[]' FROM {numbers}"
        )
        table = "TABLE " if connection.vendor == "mysql" else ""
        cursor.execute(f"ANALYZE {table}offload_task")


def lock_waiters(cursor, migrating: int) -> set[int]:
    """Sessions of this database, other than the migration's, waiting for a lock."""
    cursor.execute(LOCK_WAITERS[connection.vendor], [migrating])
    return {session for (session,) in cursor.fetchall()}


def migrate_while_enqueueing(backend, backwards: bool) -> list[str]:
    """Run the index migration (backwards or forwards) in a thread while this one
    enqueues tasks and watches for sessions waiting on a lock; return the ids
    enqueued meanwhile."""
    target = f"{online.NAME} {'backwards' if backwards else 'forwards'}"
    migrating: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def migrate() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(SESSION[connection.vendor])
                migrating.append(cursor.fetchone()[0])
            online.run(backwards=backwards)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()
            connections.close_all()

    thread = threading.Thread(target=migrate)
    thread.start()
    wait_for(lambda: bool(migrating) or done.is_set())
    enqueued, slowest_enqueue, longest_wait = [], 0.0, 0.0
    waiting_since: dict[int, float] = {}
    begun = time.monotonic()
    with connection.cursor() as cursor:
        while not done.is_set():
            started = time.monotonic()
            enqueued.append(tasks.add.enqueue(1, 1).id)
            slowest_enqueue = max(slowest_enqueue, time.monotonic() - started)
            now = time.monotonic()
            waiters = lock_waiters(cursor, migrating[0]) if migrating else set()
            waiting_since = {pid: waiting_since.get(pid, now) for pid in waiters}
            longest_wait = max([longest_wait, *(now - at for at in waiting_since.values())])
            time.sleep(0.01)
    took = time.monotonic() - begun
    thread.join()
    assert not failures, failures
    print(
        f"\nmigrate to {target}: {took:.2f}s, {len(enqueued)} enqueues, slowest "
        f"{slowest_enqueue * 1000:.0f} ms, longest lock wait {longest_wait * 1000:.0f} ms"
    )
    assert longest_wait < MOST_LOCK_WAIT
    assert slowest_enqueue < MOST_ENQUEUE
    return enqueued


def index_validity() -> dict[str, bool]:
    """The task table's indexes, and whether each is valid (PostgreSQL keeps an
    index a failed concurrent build left, marked invalid)."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            found = connection.introspection.get_constraints(cursor, "offload_task")
            return {name: True for name, info in found.items() if info["index"]}
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = 'offload_task'"
        )
        return dict(cursor.fetchall())


def test_an_index_migration_runs_while_a_worker_drains(backend, start_process):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time whatever the statement")
    fill_finished(FINISHED_ROWS)
    # The worker checks at start that the tables are up to date.
    start_process(*WORKER)
    warm = tasks.add.enqueue(0, 0)
    wait_for(lambda: backend.get_result(warm.id).status == TaskResultStatus.SUCCESSFUL, 60)
    try:
        # Forwards (builds a full index and a partial one, drops the full one),
        # then backwards (builds the full one, drops both): all while the
        # worker drains.
        enqueued = migrate_while_enqueueing(backend, backwards=False)
        indexes = index_validity()
        assert online.FULL_INDEX.name not in indexes
        assert indexes[online.PARTIAL_INDEX] is True
        assert all(indexes.values())
        enqueued += migrate_while_enqueueing(backend, backwards=True)
        indexes = index_validity()
        assert not {online.FULL_INDEX.name, online.PARTIAL_INDEX} & set(indexes)
        assert all(indexes.values())
        # Every task enqueued meanwhile is run.
        for task_id in enqueued:
            wait_for(
                lambda task_id=task_id: (
                    backend.get_result(task_id).status == TaskResultStatus.SUCCESSFUL
                ),
                60,
            )
    finally:
        drop_leftovers()


def drop_leftovers() -> None:
    """What a failed run of the test migration left: its indexes and its record."""
    from django.db.migrations.recorder import MigrationRecorder

    with connection.cursor() as cursor:
        for name in (online.FULL_INDEX.name, online.PARTIAL_INDEX):
            on = " ON offload_task" if connection.vendor == "mysql" else ""
            cursor.execute(f"DROP INDEX IF EXISTS {name}{on}")
    MigrationRecorder(connection).record_unapplied("offload", online.NAME)
