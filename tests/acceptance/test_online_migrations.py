"""An index migration of the task table runs while a real worker drains tasks, and
never makes an enqueue, a claim or a completion wait for it (PostgreSQL: the
indexes are built and dropped CONCURRENTLY)."""

import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.tasks import TaskResultStatus

from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker", "--processes", "1", "--threads", "2", "-v", "0")
BEFORE, INDEX_MIGRATION = "0008_async_claim_index", "0009_running_lease_index"
# Finished rows the index builds have to read: enough that a build holding
# a lock would hold it for far longer than the bounds below.
FINISHED_ROWS = 1_500_000
# The longest any other session may wait on a lock while the migration runs,
# and the longest an enqueue may take (the machine may be loaded).
MOST_LOCK_WAIT = 0.3
MOST_ENQUEUE = 1.0


def fill_finished(rows: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO offload_task (task_path, backend, queue_name, priority, status, "
            "is_async, available_at, enqueued_at, finished_at, attempt, max_attempts, "
            "worker_ids, args, kwargs, errors) SELECT 'tests.app.tasks.noop', 'default', "
            "'default', 0, 'SUCCESSFUL', false, now(), now(), now(), 1, 1, '[]', '[]', '{}', "
            "'[]' FROM generate_series(1, %s)",
            [rows],
        )
        cursor.execute("ANALYZE offload_task")


def lock_waiters(cursor, migrating: int) -> set[int]:
    """Sessions of this database, other than the migration's, waiting for a lock."""
    cursor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid NOT IN (pg_backend_pid(), %s)",
        [migrating],
    )
    return {pid for (pid,) in cursor.fetchall()}


def run_index_migration(backwards: bool) -> None:
    """Unapply or apply 0009 alone, from the state just before it. Rolling the
    graph back to 0008 would also undo the later migrations, whose columns the
    running worker needs; the index operations are what is under test."""
    executor = MigrationExecutor(connection)
    migration = executor.loader.get_migration("offload", INDEX_MIGRATION)
    before = executor.loader.project_state(("offload", BEFORE), at_end=True)
    if backwards:
        executor.unapply_migration(before, migration)
    else:
        executor.apply_migration(before, migration)


def migrate_while_enqueueing(backend, backwards: bool) -> list[str]:
    """Run the index migration (backwards or forwards) in a thread while this one
    enqueues tasks and watches for sessions waiting on a lock; return the ids
    enqueued meanwhile."""
    target = f"{INDEX_MIGRATION} {'backwards' if backwards else 'forwards'}"
    migrating: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def migrate() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                migrating.append(cursor.fetchone()[0])
            run_index_migration(backwards)
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
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid WHERE c.relname LIKE 'offload_task%%'"
        )
        return dict(cursor.fetchall())


def test_an_index_migration_runs_while_a_worker_drains(backend, start_process):
    if connection.vendor != "postgresql":
        pytest.skip("measures PostgreSQL's lock waits")
    fill_finished(FINISHED_ROWS)
    # The worker checks at start that the tables are up to date.
    start_process(*WORKER)
    warm = tasks.add.enqueue(0, 0)
    wait_for(lambda: backend.get_result(warm.id).status == TaskResultStatus.SUCCESSFUL, 60)
    try:
        # Back past 0009 (builds the full lease index), then forward again
        # (drops it, builds the partial one): both while the worker drains.
        enqueued = migrate_while_enqueueing(backend, backwards=True)
        assert index_validity()["offload_task_lease_idx"] is True
        enqueued += migrate_while_enqueueing(backend, backwards=False)
        indexes = index_validity()
        assert "offload_task_lease_idx" not in indexes
        assert indexes["offload_task_running_lease_idx"] is True
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
        call_command("migrate", "offload", newest_migration(), verbosity=0)


def newest_migration() -> str:
    """offload's newest migration: the tests after this one need the whole schema."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return next(name for app, name in graph.leaf_nodes() if app == "offload")
