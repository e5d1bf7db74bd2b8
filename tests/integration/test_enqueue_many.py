"""offload.enqueue_many: many tasks in a few multi-row INSERTs, all or nothing."""

import dataclasses
import types
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.tasks import TaskResultStatus
from django.tasks.exceptions import InvalidTaskBackend
from django.tasks.signals import task_enqueued
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import offload
from offload.exceptions import InvalidArguments, PayloadTooLarge
from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import drain, row_count


@pytest.fixture
def small_batches(backend, monkeypatch):
    """Three rows per INSERT, so a handful of calls spans several statements."""
    smaller = dataclasses.replace(backend.config, enqueue_batch_size=3)
    monkeypatch.setattr(backend, "config", smaller)


def test_every_call_becomes_a_task_in_order(backend, small_batches):
    calls = [([i, 10 * i], {}) for i in range(8)]
    results = offload.enqueue_many(tasks.add, calls)

    assert [r.args for r in results] == [[i, 10 * i] for i in range(8)]
    assert all(r.status == TaskResultStatus.READY for r in results)
    ids = [int(r.id) for r in results]
    assert ids == sorted(ids)
    rows = TaskRecord.objects.in_bulk(ids)
    for result in results:
        row = rows[int(result.id)]
        assert row.args == result.args
        assert row.status == State.READY
        assert row.enqueued_at == result.enqueued_at

    drain()
    assert [backend.get_result(r.id).return_value for r in results] == [11 * i for i in range(8)]


def test_the_backend_method_takes_kwargs_and_the_tasks_options(backend):
    later = timezone.now() + timedelta(hours=1)
    task = tasks.echo.using(priority=5, queue_name="emails", run_after=later)
    results = backend.enqueue_many(task, [((1,), {"a": "x"}), ([], {"b": [1, 2]})])

    assert [(r.args, r.kwargs) for r in results] == [([1], {"a": "x"}), ([], {"b": [1, 2]})]
    rows = list(TaskRecord.objects.order_by("id"))
    assert [(row.priority, row.queue_name) for row in rows] == [(5, "emails")] * 2
    assert all(row.run_after == later and row.available_at == later for row in rows)
    assert [row.kwargs for row in rows] == [{"a": "x"}, {"b": [1, 2]}]


def test_no_calls_enqueue_nothing(backend):
    assert backend.enqueue_many(tasks.noop, []) == []
    assert row_count() == 0


def test_each_task_sends_task_enqueued(backend):
    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        results = offload.enqueue_many(tasks.noop, [([], {})] * 4)
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [r.id for r in results]


@pytest.mark.parametrize(
    ("bad_call", "error", "words"),
    [
        (([object()], {}), InvalidArguments, "calls[5]: Unsupported type: args[0]"),
        (([float("nan")], {}), InvalidArguments, "calls[5]: args[0] is nan"),
        ((["x" * 2000], {}), PayloadTooLarge, "calls[5]: The task's arguments are"),
        ([1, 2], InvalidArguments, "calls[5] must be a pair (args, kwargs)"),
        ((["a"],), InvalidArguments, "calls[5] must be a pair (args, kwargs)"),
        (([], ["not", "a", "dict"]), InvalidArguments, "calls[5] must be a pair"),
    ],
)
def test_one_bad_call_enqueues_nothing(backend, small_batches, monkeypatch, bad_call, error, words):
    monkeypatch.setattr(
        backend, "config", dataclasses.replace(backend.config, max_payload_bytes=1000)
    )
    calls = [([i], {}) for i in range(5)] + [bad_call] + [([i], {}) for i in range(4)]
    with pytest.raises(error) as raised:
        offload.enqueue_many(tasks.echo, calls)
    assert words in str(raised.value)
    assert row_count() == 0


def test_a_failing_insert_leaves_no_rows(backend, small_batches):
    # The second INSERT fails (a NOT NULL column left empty) after the first succeeded.
    rows = [backend._new_task(tasks.noop, [], {}) for _ in range(5)]
    rows[4] = dataclasses.replace(rows[4], task_path=None)
    with pytest.raises(Exception):  # noqa: B017, PT011 - each engine has its own error
        backend.store.enqueue_many(rows, 3)
    assert row_count() == 0


def test_a_rolled_back_transaction_enqueues_nothing(backend):
    class Rollback(Exception):
        pass

    def enqueue_then_roll_back():
        with transaction.atomic():
            offload.enqueue_many(tasks.noop, [([], {})] * 3)
            assert row_count() == 3
            raise Rollback

    with pytest.raises(Rollback):
        enqueue_then_roll_back()
    assert row_count() == 0


def test_a_chunk_never_exceeds_the_drivers_parameter_limit(backend, monkeypatch):
    # 15 parameters per row: two rows fit under this limit.
    # A class attribute: it is a property on some engines, a cached one on others.
    monkeypatch.setattr(type(connection.features), "max_query_params", 30, raising=False)
    connection.features.__dict__.pop("max_query_params", None)
    with CaptureQueriesContext(connection) as queries:
        results = backend.store.enqueue_many([backend._new_task(tasks.noop, [], {})] * 5, 1000)
    assert len(results) == 5
    assert row_count() == 5
    assert sum(q["sql"].startswith("INSERT") for q in queries.captured_queries) == 3


def test_only_offload_backends_enqueue_many():
    other = types.SimpleNamespace(get_backend=object, module_path="tests.app.tasks.noop")
    with pytest.raises(InvalidTaskBackend, match="enqueue_many needs an offload backend"):
        offload.enqueue_many(other, [([], {})])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's")
def test_postgresql_notifies_each_queue_once_per_batch(backend, small_batches):
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute("LISTEN offload_task")
        offload.enqueue_many(tasks.noop, [([], {})] * 10)
        offload.enqueue_many(tasks.send_email.using(queue_name="emails"), [(["a"], {})] * 4)
        heard = [n.payload for n in listener.notifies(timeout=1.0)]
    assert heard == ["default", "emails"]
