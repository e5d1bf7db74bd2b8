"""Where autovacuum will not run, the pruner vacuums the task table itself."""

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from offload.conf import Options, parse_options
from offload.models import TaskRecord
from offload.states import State
from offload.store import TaskStore
from offload.store.vacuum import DEAD_FLOOR, vacuum_due
from offload.worker.pruner import Pruner

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="dead row versions wait for VACUUM on PostgreSQL"
)


def options(**raw: Any) -> Options:
    found = parse_options(raw, {"default"})
    assert not found.problems, found.problems
    return found


def stats() -> tuple[int, int]:
    """(dead rows, vacuums) of the task table, as the statistics now say."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute(
            "SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables "
            "WHERE relid = 'offload_task'::regclass"
        )
        dead, vacuums = cursor.fetchone()
    return int(dead), int(vacuums)


@pytest.fixture
def autovacuum_off_for_the_table():
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE offload_task SET (autovacuum_enabled = false)")
    yield
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE offload_task RESET (autovacuum_enabled)")


def leave_dead_rows(count: int) -> None:
    now = timezone.now()
    TaskRecord.objects.bulk_create(
        TaskRecord(backend="default", task_path="tests.app.tasks.noop", status=State.SUCCESSFUL,
                   available_at=now, enqueued_at=now, finished_at=now)
        for _ in range(count)
    )  # fmt: skip
    TaskRecord.objects.all().delete()


def test_the_pruner_vacuums_the_table_when_autovacuum_is_off_for_it(autovacuum_off_for_the_table):
    store = TaskStore("default")
    leave_dead_rows(DEAD_FLOOR * 2)
    dead, vacuums = stats()
    assert dead >= DEAD_FLOOR * 2
    assert vacuum_due("default")
    pruner = Pruner("default", options(), owner="test")
    pruner.work(store)
    dead_after, vacuums_after = stats()
    assert vacuums_after == vacuums + 1
    assert dead_after == 0
    assert not vacuum_due("default")


def test_a_few_dead_rows_wait(autovacuum_off_for_the_table):
    leave_dead_rows(10)
    _, vacuums = stats()
    assert not vacuum_due("default")
    Pruner("default", options(), owner="test").work(TaskStore("default"))
    assert stats()[1] == vacuums


def test_prune_vacuum_off_leaves_it_to_the_operator(autovacuum_off_for_the_table):
    leave_dead_rows(DEAD_FLOOR * 2)
    _, vacuums = stats()
    Pruner("default", options(PRUNE_VACUUM=False), owner="test").work(TaskStore("default"))
    assert stats()[1] == vacuums
