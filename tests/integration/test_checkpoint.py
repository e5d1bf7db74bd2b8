"""An idle worker moves SQLite's write-ahead log into the database file."""

import contextlib
import sqlite3

import pytest
from django.db import connection

from offload.models import TaskRecord
from offload.states import State
from offload.worker import loop
from tests.app import tasks
from tests.helpers import running_worker, wait_for


def _successful_in_the_database_file() -> int:
    """SUCCESSFUL tasks as the database file holds them, without its log."""
    path = connection.settings_dict["NAME"]
    # immutable: read the file as it is, ignoring the write-ahead log.
    with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as file_only:
        query = "SELECT COUNT(*) FROM offload_task WHERE status = 'SUCCESSFUL'"
        return file_only.execute(query).fetchone()[0]


def test_an_idle_worker_checkpoints_the_log_after_its_tasks(backend):
    if connection.vendor != "sqlite":
        pytest.skip("only SQLite has a write-ahead log the worker checkpoints")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the tables into the file, to start
    assert _successful_in_the_database_file() == 0
    with running_worker() as running:
        wait_for(lambda: running.worker.wakeups.has_socket, what="the first claim")
        ids = [tasks.add.enqueue(i, 1).id for i in range(loop.CHECKPOINT_TASKS)]
        wait_for(
            lambda: (
                TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == len(ids)
            ),
            what="the tasks",
        )
        # Far below SQLite's own threshold (1,000 pages): only the worker's
        # checkpoint puts the outcomes in the file.
        wait_for(lambda: _successful_in_the_database_file() == len(ids), what="the checkpoint")


def test_the_checkpoint_is_nothing_on_other_engines(backend):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite checkpoints")
    from offload.store import TaskStore

    TaskStore("default").checkpoint()  # must not send SQLite's PRAGMA elsewhere
