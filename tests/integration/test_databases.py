"""OPTIONS["DATABASE"] on another alias, and the checks that need a database."""

import pytest
from django.core import checks
from django.db import connection, connections, transaction
from django.tasks import TaskResultStatus, task_backends

from offload.checks import check_sqlite_journal_mode
from offload.models import TaskRecord
from tests.app import tasks
from tests.helpers import drain


@pytest.mark.django_db(transaction=True, databases=["default", "queue"])
def test_a_backend_on_another_database():
    separate = task_backends["separate"]
    result = tasks.add.using(backend="separate").enqueue(4, 5)
    assert TaskRecord.objects.using("queue").count() == 1
    assert TaskRecord.objects.using("default").count() == 0
    assert drain().processed == 0  # the default backend's worker does not see it

    stats = drain_separate()
    assert stats.succeeded == 1
    fetched = separate.get_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 9
    assert fetched.backend == "separate"


def drain_separate():
    from offload.worker import Worker, WorkerConfig

    return Worker(WorkerConfig("separate")).run(burst=True)


@pytest.mark.django_db(transaction=True, databases=["default", "queue"])
def test_enqueue_on_another_database_does_not_join_the_default_transaction():
    with pytest.raises(RuntimeError), transaction.atomic(using="default"):  # noqa: PT012
        tasks.add.using(backend="separate").enqueue(1, 1)
        raise RuntimeError
    # Documented: only a transaction on the tasks' own database covers the enqueue.
    assert TaskRecord.objects.using("queue").count() == 1


@pytest.mark.django_db(transaction=True, databases=["default", "queue"])
def test_the_router_puts_tables_where_the_backends_look():
    for alias in ("default", "queue"):
        assert "offload_task" in connections[alias].introspection.table_names()


def test_sqlite_outside_wal_mode_is_warned_about():
    if connection.vendor != "sqlite":
        pytest.skip("journal modes exist on SQLite only")
    assert check_sqlite_journal_mode(databases=["default"]) == []
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=DELETE")
    try:
        messages = check_sqlite_journal_mode(databases=["default"])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
    assert [(m.id, m.level) for m in messages] == [("offload.W001", checks.WARNING)]
    assert "'delete' journal mode" in messages[0].msg


def test_the_engine_check_passes_on_supported_databases():
    from offload.checks import check_database_engine

    assert check_database_engine(databases=["default"]) == []
    assert check_database_engine(databases=None) == []
