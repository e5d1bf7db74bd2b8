"""Unique tasks on every database: one holder per key, each scope releasing the
key when it says, every duplicate behaviour, inside a transaction and in bulk."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone

import offload
from offload.exceptions import DuplicateTask
from offload.failures import AttemptEnd
from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import drain

LOST = AttemptEnd('{"exception_class_path": "x.Lost", "traceback": ""}')


def row(result):
    return TaskRecord.objects.get(pk=int(result.id))


def claim_all(backend):
    return backend.store.claim("w1", limit=100, lease_seconds=60)


def test_a_duplicate_returns_the_existing_task():
    first = tasks.sync_customer.enqueue(42)
    again = tasks.sync_customer.enqueue(42, full=True)
    other = tasks.sync_customer.enqueue(7)

    assert again.id == first.id
    assert again.kwargs == {}  # the holder's call, not the duplicate's
    assert other.id != first.id
    assert TaskRecord.objects.count() == 2
    record = row(first)
    assert (record.unique_key, record.unique_scope) == ("customer-42", "waiting")


def test_scope_waiting_releases_the_key_at_the_claim(backend):
    first = tasks.sync_customer.enqueue(42)
    (claimed,) = claim_all(backend)
    assert claimed.id == int(first.id)
    assert row(first).unique_key is None

    second = tasks.sync_customer.enqueue(42)
    assert second.id != first.id
    assert tasks.sync_customer.enqueue(42).id == second.id


def test_scope_active_holds_the_key_while_running_and_releases_it_at_the_end(backend):
    first = tasks.reindex.enqueue()
    (claimed,) = claim_all(backend)
    assert row(first).unique_key == "reindex"
    with pytest.raises(DuplicateTask) as caught:
        tasks.reindex.enqueue()
    assert caught.value.existing_id == first.id
    assert caught.value.key == "reindex"

    assert backend.store.complete(claimed.id, claimed.attempt, '"all"', 0.0)
    assert row(first).unique_key is None
    assert tasks.reindex.enqueue().id != first.id


@pytest.mark.parametrize("ending", ["fail", "cancelled", "rescue"])
def test_every_final_state_releases_an_active_key(backend, ending):
    first = tasks.reindex.enqueue()
    (claimed,) = claim_all(backend)
    store = backend.store
    if ending == "fail":
        assert store.fail(claimed.id, claimed.attempt, "[]")
    elif ending == "cancelled":
        assert store.cancelled(claimed.id, claimed.attempt, '{"exception_class_path": "x"}')
    else:
        assert store.attempt_lost(claimed.id, claimed.attempt, LOST, 0.0)  # max_attempts 1
    record = row(first)
    assert record.status in (State.FAILED, State.CANCELLED)
    assert record.unique_key is None
    tasks.reindex.enqueue()


def test_a_retry_keeps_an_active_key(backend):
    first = tasks.flaky.unique("flaky-1", scope="active").enqueue(5, "m")
    (claimed,) = claim_all(backend)
    assert backend.store.attempt_lost(claimed.id, claimed.attempt, LOST, 0.0)
    record = row(first)
    assert (record.status, record.unique_key) == (State.READY, "flaky-1")
    assert tasks.flaky.unique("flaky-1", scope="active").enqueue(5, "m").id == first.id


def test_cancelling_a_waiting_task_releases_its_key(backend):
    first = tasks.sync_customer.enqueue(42)
    assert backend.cancel(first.id) == "cancelled"
    assert row(first).unique_key is None
    assert tasks.sync_customer.enqueue(42).id != first.id


def test_scope_period_holds_past_the_end_until_the_period_is_over():
    first = tasks.send_digest.enqueue("mon")
    assert drain().processed == 1
    record = row(first)
    assert (record.status, record.unique_key) == (State.SUCCESSFUL, "digest")
    assert record.unique_until - record.enqueued_at == timedelta(hours=1)
    assert tasks.send_digest.enqueue("tue").id == first.id

    TaskRecord.objects.filter(pk=record.pk).update(
        unique_until=timezone.now() - timedelta(seconds=1)
    )
    second = tasks.send_digest.enqueue("tue")
    assert second.id != first.id
    assert row(first).unique_key is None
    assert row(second).unique_key == "digest"


def test_replace_gives_a_waiting_holder_the_new_arguments():
    replacing = tasks.sync_customer.unique("customer-9", on_duplicate="replace")
    first = replacing.enqueue(9)
    later = timezone.now() + timedelta(hours=1)
    again = replacing.using(priority=5, run_after=later).enqueue(9, full=True)

    assert again.id == first.id
    assert again.kwargs == {"full": True}
    record = row(first)
    assert (record.kwargs, record.priority, record.run_after) == ({"full": True}, 5, later)
    assert record.available_at == later
    assert TaskRecord.objects.count() == 1


def test_replace_leaves_a_running_holder_as_it_is(backend):
    replacing = tasks.reindex.unique("reindex", on_duplicate="replace")
    first = replacing.enqueue("products")
    claim_all(backend)
    again = replacing.enqueue("orders")
    assert again.id == first.id
    assert again.args == ["products"]
    assert again.status == TaskResultStatus.RUNNING
    assert row(first).args == ["products"]


def test_a_duplicate_inside_a_transaction_keeps_the_transaction():
    with transaction.atomic():
        first = tasks.sync_customer.enqueue(1)
        assert tasks.sync_customer.enqueue(1).id == first.id
        with pytest.raises(DuplicateTask):
            tasks.sync_customer.unique("customer-1", on_duplicate="raise").enqueue(1)
        tasks.sync_customer.enqueue(2)
    assert TaskRecord.objects.count() == 2


def test_a_rolled_back_enqueue_leaves_the_key_free():
    raising = tasks.sync_customer.unique("customer-1", on_duplicate="raise")
    with transaction.atomic():
        raising.enqueue(1)
        transaction.set_rollback(True)
    raising.enqueue(1)  # no DuplicateTask: the key was never held
    assert TaskRecord.objects.count() == 1


def test_enqueue_many_with_keys_inside_the_batch_and_against_the_table():
    held = tasks.sync_customer.enqueue(3)
    results = offload.enqueue_many(
        tasks.sync_customer, [([1], {}), ([2], {}), ([1], {"full": True}), ([3], {})]
    )
    ids = [r.id for r in results]
    assert ids[0] == ids[2]
    assert ids[3] == held.id
    assert len(set(ids)) == 3
    assert TaskRecord.objects.count() == 3


def test_enqueue_many_with_a_raising_duplicate_enqueues_nothing():
    with pytest.raises(DuplicateTask):
        offload.enqueue_many(tasks.reindex, [(["a"], {}), (["b"], {})])
    assert TaskRecord.objects.count() == 0


def test_a_key_is_per_backend_and_free_for_tasks_without_one():
    tasks.sync_customer.enqueue(5)
    tasks.add.enqueue(1, 2)
    tasks.add.enqueue(1, 2)
    assert TaskRecord.objects.filter(unique_key__isnull=True).count() == 2
    assert TaskRecord.objects.count() == 3


def test_a_callable_key_returning_none_takes_no_key():
    task = tasks.echo.unique(lambda *args, **kwargs: None if not args else str(args[0]))
    task.enqueue()
    task.enqueue()
    task.enqueue("x")
    task.enqueue("x")
    assert TaskRecord.objects.count() == 3


def test_the_holder_is_found_through_the_unique_index():
    tasks.sync_customer.enqueue(1)
    plan = " ".join(
        TaskRecord.objects.filter(backend="default", unique_key="customer-1").explain().split()
    )
    assert "offload_task_unique_key_uniq" in plan
