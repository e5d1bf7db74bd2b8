"""The worker outlives a dropped database connection, and stops cleanly on Ctrl-C."""

import pytest
from django.db import connection
from django.tasks import TaskResultStatus

from tests.app import tasks
from tests.helpers import drain, running_worker, wait_for


def _kill_other_sessions() -> int:
    """Have the server end every other session on this database, the worker's included."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for session in ids:
            cursor.execute(f"KILL {int(session)}")
        return len(ids)


def test_a_worker_reconnects_after_its_connection_is_killed(backend):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server sessions to kill")
    with running_worker() as running:
        first = tasks.add.enqueue(1, 1)
        wait_for(lambda: backend.get_result(first.id).status == TaskResultStatus.SUCCESSFUL)
        assert _kill_other_sessions() >= 1
        second = tasks.add.enqueue(2, 2)
        wait_for(
            lambda: backend.get_result(second.id).status == TaskResultStatus.SUCCESSFUL,
            what="a task after the worker's session was killed",
        )
        assert running.thread.is_alive()
    assert running.worker.stats.succeeded == 2
    assert backend.get_result(second.id).return_value == 4


def test_ctrl_c_in_an_embedded_worker_gives_the_task_back(backend):
    stopped = tasks.interrupt.enqueue()
    after = tasks.add.enqueue(1, 2)
    stats = drain()
    # Only the interrupted task was claimed (nothing was timed yet, so the worker
    # claims one at a time); it goes back to READY, and the worker stops. Its
    # code had started, so the attempt is in its history (failures.cut_short).
    assert (stats.succeeded, stats.failed, stats.released) == (0, 0, 1)
    interrupted = backend.get_result(stopped.id)
    assert interrupted.status == TaskResultStatus.READY
    assert [e.exception_class_path for e in interrupted.errors] == [
        "offload.exceptions.AttemptGivenBack"
    ]
    untouched = backend.get_result(after.id)
    assert (untouched.status, untouched.attempts) == (TaskResultStatus.READY, 0)
