"""The enqueue's INSERT runs on the driver's cursor only where nothing could tell."""

import pytest
from django.db import IntegrityError, connection, transaction

from offload.models import TaskRecord
from offload.store.connection import fetch_one
from tests.app import tasks


def test_an_execute_wrapper_sees_the_enqueue(backend):
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    tasks.noop.enqueue()  # the connection is open: the driver's cursor could be used
    with connection.execute_wrapper(wrapper):
        result = tasks.noop.enqueue()
    assert [sql for sql in seen if "INSERT INTO offload_task" in sql], seen
    assert TaskRecord.objects.filter(pk=result.id).exists()


def test_the_driver_cursor_gives_djangos_errors(backend):
    existing = tasks.noop.enqueue()
    sql = (
        "INSERT INTO offload_task (id, task_path, backend, queue_name, priority, status, "
        "is_async, max_attempts, attempt, worker_ids, args, kwargs, errors, available_at, "
        "enqueued_at) SELECT id, task_path, backend, queue_name, priority, status, is_async, "
        "max_attempts, attempt, worker_ids, args, kwargs, errors, available_at, enqueued_at "
        "FROM offload_task WHERE id = %s RETURNING id"
    )
    with pytest.raises(IntegrityError):
        fetch_one(connection, sql, [int(existing.id)])


def test_the_driver_cursor_keeps_djangos_placeholders_and_percent_signs(backend):
    tasks.noop.enqueue()
    row = fetch_one(connection, "SELECT %s, '100%%'", ["a%s"])
    assert tuple(row) == ("a%s", "100%")


def test_a_broken_transaction_is_refused_as_django_refuses_it(backend):
    from django.db.transaction import TransactionManagementError

    tasks.noop.enqueue()
    with transaction.atomic():
        transaction.set_rollback(True)
        connection.needs_rollback = True
        with pytest.raises(TransactionManagementError):
            tasks.noop.enqueue()
