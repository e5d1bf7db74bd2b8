"""Concurrency limits on every database: the gate at enqueue, the promotion of
blocked tasks at every way a task of the key ends, blocked tasks out of every
queue's way, inside the caller's transaction, in bulk, and bad values."""

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus
from django.tasks.exceptions import InvalidTask

import offload
from offload.models import TaskRecord
from offload.states import State
from offload.store import operations
from offload.task import task as offload_task
from tests.app import tasks
from tests.helpers import LOST, claim_all, drain, statuses


def partner_calls(count):
    return [tasks.call_partner.enqueue(n) for n in range(count)]


def test_the_gate_lets_the_limit_in_and_blocks_the_rest():
    results = partner_calls(4)
    assert statuses(results) == [State.READY, State.READY, State.BLOCKED, State.BLOCKED]
    # Django sees a blocked task as waiting to run.
    assert all(result.status == TaskResultStatus.READY for result in results)
    got = tasks.call_partner.get_result(results[3].id)
    assert got.status == TaskResultStatus.READY
    record = TaskRecord.objects.get(pk=int(results[3].id))
    assert (record.concurrency_key, record.concurrency_limit) == ("partner-api", 2)


def test_a_key_built_from_the_arguments_limits_each_key_apart():
    results = [tasks.sync_account.enqueue(c) for c in (1, 1, 2, 1, 2)]
    assert statuses(results) == [
        State.READY, State.BLOCKED, State.READY, State.BLOCKED, State.BLOCKED,
    ]  # fmt: skip
    keys = TaskRecord.objects.values_list("concurrency_key", flat=True).distinct()
    assert sorted(keys) == ["account-1", "account-2"]


def test_the_claim_never_takes_a_blocked_task_and_takes_what_is_behind_it(backend):
    partner_calls(3)
    other = tasks.add.enqueue(1, 2)
    claimed = claim_all(backend)
    assert sorted(task.task_path.rsplit(".", 1)[1] for task in claimed) == [
        "add", "call_partner", "call_partner",
    ]  # fmt: skip
    assert int(other.id) in {task.id for task in claimed}
    assert TaskRecord.objects.filter(status=State.BLOCKED).count() == 1
    assert all(
        task.keys == [("default", "partner-api")] for task in claimed if task.id != int(other.id)
    )


@pytest.mark.parametrize("ending", ["success", "fail", "cancelled", "rescue", "many"])
@pytest.mark.parametrize("known", [True, False])
def test_every_final_state_promotes_the_oldest_blocked_task(backend, ending, known):
    results = partner_calls(4)
    first, _ = claim_all(backend)
    store = backend.store
    keys = first.keys if known else None  # None: the store reads the key
    if ending == "success":
        assert store.complete(first.id, first.attempt, "1", 0.0, keys=keys)
    elif ending == "many":
        assert store.complete_many([(first.id, first.attempt, "1", 0.0)], keys=keys)
    elif ending == "fail":
        assert store.fail(first.id, first.attempt, "[]", keys=keys)
    elif ending == "cancelled":
        assert store.cancelled(first.id, first.attempt, '{"exception_class_path": "x"}', keys=keys)
    else:
        assert store.attempt_lost(first.id, first.attempt, LOST, 0.0, keys=keys)  # 1 attempt
    assert statuses(results)[1:] == [State.RUNNING, State.READY, State.BLOCKED]
    (promoted,) = claim_all(backend)
    assert promoted.id == int(results[2].id)


def test_a_retry_keeps_its_slot(backend):
    limited = tasks.flaky.limited("flaky-key", limit=1)
    results = [limited.enqueue(5, "m"), limited.enqueue(5, "n")]
    (claimed,) = claim_all(backend)
    assert backend.store.attempt_lost(claimed.id, claimed.attempt, LOST, 0.0)  # 4 attempts
    assert statuses(results) == [State.READY, State.BLOCKED]


def test_promotion_follows_priority_then_enqueue_order(backend):
    first = tasks.call_partner.enqueue(0)
    tasks.call_partner.enqueue(1)
    low = tasks.call_partner.using(priority=-5).enqueue(2)
    plain = tasks.call_partner.enqueue(3)
    high = tasks.call_partner.using(priority=5).enqueue(4)
    assert backend.cancel(first.id) == "cancelled"
    assert statuses([high, plain, low]) == [State.READY, State.BLOCKED, State.BLOCKED]


def test_cancelling_a_ready_task_frees_its_slot_and_a_blocked_one_just_ends(backend):
    results = partner_calls(4)
    assert backend.cancel(results[3].id) == "cancelled"
    assert statuses(results) == [State.READY, State.READY, State.BLOCKED, State.CANCELLED]
    assert backend.cancel(results[0].id) == "cancelled"
    assert statuses(results) == [State.CANCELLED, State.READY, State.READY, State.CANCELLED]


def test_a_worker_runs_them_all_and_promotes_as_it_goes():
    results = partner_calls(7)
    other = tasks.add.enqueue(2, 3)
    assert drain().processed == 8
    assert set(statuses([*results, other])) == {State.SUCCESSFUL}


def test_inside_the_callers_transaction():
    with transaction.atomic():
        results = partner_calls(3)
        assert statuses(results) == [State.READY, State.READY, State.BLOCKED]
    with transaction.atomic():
        tasks.call_partner.enqueue(9)
        transaction.set_rollback(True)
    assert TaskRecord.objects.count() == 3
    assert statuses(results) == [State.READY, State.READY, State.BLOCKED]


def test_a_rolled_back_enqueue_takes_no_slot():
    with transaction.atomic():
        partner_calls(2)
        transaction.set_rollback(True)
    assert statuses(partner_calls(2)) == [State.READY, State.READY]


def test_enqueue_many_passes_each_call_through_the_gate():
    results = offload.enqueue_many(tasks.call_partner, [([n], {}) for n in range(5)])
    assert statuses(results) == [State.READY] * 2 + [State.BLOCKED] * 3
    accounts = offload.enqueue_many(tasks.sync_account, [([c], {}) for c in (4, 5, 4)])
    assert statuses(accounts) == [State.READY, State.READY, State.BLOCKED]


def test_a_unique_task_with_a_limit_is_both():
    task = tasks.sync_customer.limited("customers", limit=1)
    first, second, again = task.enqueue(1), task.enqueue(2), task.enqueue(1)
    assert again.id == first.id
    assert statuses([first, second]) == [State.READY, State.BLOCKED]


def test_replace_reaches_a_blocked_holder():
    task = tasks.sync_customer.unique(
        lambda c, **kwargs: f"customer-{c}", on_duplicate="replace"
    ).limited("customers", limit=1)
    task.enqueue(1)
    second = task.enqueue(2)
    again = task.enqueue(2, full=True)
    assert again.id == second.id
    record = TaskRecord.objects.get(pk=int(second.id))
    assert (record.status, record.kwargs) == (State.BLOCKED, {"full": True})


def test_the_sweep_lets_in_what_a_raised_limit_has_room_for(backend):
    results = partner_calls(4)
    TaskRecord.objects.filter(concurrency_key="partner-api").update(concurrency_limit=3)
    assert backend.store.sweep(100) == 1
    assert statuses(results) == [State.READY, State.READY, State.READY, State.BLOCKED]
    assert backend.store.sweep(100) == 1  # idempotent: the key is full
    assert statuses(results)[3] == State.BLOCKED


def test_an_operators_retry_and_run_again_pass_the_gate(backend):
    results = partner_calls(2)
    first, _ = claim_all(backend)
    assert backend.store.fail(first.id, first.attempt, "[]", keys=first.keys)
    third = tasks.call_partner.enqueue(3)  # takes the freed slot
    assert operations.retry(backend.store, [first.id]) == 1
    assert statuses([results[0], third]) == [State.BLOCKED, State.READY]
    (copy,) = operations.run_again(backend.store, [first.id])
    assert TaskRecord.objects.get(pk=copy).status == State.BLOCKED
    assert operations.delete(backend.store, [int(third.id)]) == 1
    assert statuses([results[0]]) == [State.READY]


def test_a_limit_per_call():
    results = [tasks.add.limited("adds", limit=1).enqueue(1, n) for n in range(2)]
    assert statuses(results) == [State.READY, State.BLOCKED]
    unlimited = tasks.call_partner.limited(None)
    assert statuses([unlimited.enqueue(n) for n in range(3)]) == [State.READY] * 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency_key": 5}, "concurrency_key must be a string"),
        ({"concurrency_key": ""}, "concurrency_key must not be empty"),
        ({"concurrency_key": "k" * 256}, "the most is 255"),
        ({"concurrency_key": "k", "concurrency_limit": 0}, "concurrency_limit must be a whole"),
        ({"concurrency_key": "k", "concurrency_limit": True}, "concurrency_limit must be a whole"),
        ({"concurrency_key": "k", "concurrency_limit": "2"}, "concurrency_limit must be a whole"),
        ({"concurrency_limit": 2}, "concurrency_limit needs a concurrency_key"),
    ],
)
def test_bad_values_are_refused(options, message):
    with pytest.raises(InvalidTask, match=message):
        offload_task(**options)(lambda: None)
    if "concurrency_key" in options:  # the same checks for one call
        with pytest.raises(InvalidTask, match=message):
            tasks.add.limited(options["concurrency_key"], options.get("concurrency_limit"))
    assert TaskRecord.objects.count() == 0


def test_a_callable_key_that_fails_or_returns_a_bad_key_enqueues_nothing():
    with pytest.raises(InvalidTask, match="concurrency_key raised ZeroDivisionError"):
        tasks.echo.limited(lambda *args: 1 / 0).enqueue()
    with pytest.raises(InvalidTask, match="callable's result: concurrency_key must be a string"):
        tasks.echo.limited(lambda *args: 7).enqueue()
    with pytest.raises(InvalidTask, match=r"calls\[1\]"):
        offload.enqueue_many(tasks.echo.limited(lambda x: None if x else 3), [([1], {}), ([0], {})])
    tasks.echo.limited(lambda *args: None).enqueue()  # None: no limit
    assert TaskRecord.objects.filter(concurrency_key__isnull=True).count() == 1


def test_the_gate_reads_its_indexes(backend):
    from django.db import connection

    from offload.store.gate import blocked_sql, holders_sql, with_blocked_sql

    partner_calls(3)
    tasks.add.enqueue(1, 1)
    store = backend.store
    vendor = store.vendor
    # The SELECTs without the locking suffix: EXPLAIN takes plain reads.
    holders = holders_sql(vendor).removesuffix(vendor.read_latest)
    blocked = blocked_sql(vendor).removesuffix(vendor.read_latest)
    holders_plan = " ".join(store._explain(holders, ["default", "partner-api"]))
    blocked_plan = " ".join(store._explain(blocked, ["default", "partner-api", 10]))
    assert "offload_task_blocked_idx" in blocked_plan
    with_blocked = with_blocked_sql(vendor, 2)
    with_blocked_plan = " ".join(store._explain(with_blocked, ["default", "partner-api", "x"]))
    assert "offload_task_blocked_idx" in with_blocked_plan
    if connection.vendor == "mysql":
        assert "offload_task_blocked_idx" in holders_plan
    else:
        assert "offload_task_key_holders_idx" in holders_plan


def test_the_rescuers_turn_rescues_a_keyed_task_and_sweeps(backend):
    from offload.worker.rescue import Rescuer

    results = partner_calls(4)
    store = backend.store
    rescuer = Rescuer("default", backend.config, "tests-rescuer")
    (lost,) = store.claim("gone", limit=1, lease_seconds=-1)  # its lease already expired
    assert lost.id == int(results[0].id)
    assert rescuer.work(store) == 1  # failed for good (one attempt), and promoted
    assert statuses(results) == [State.FAILED, State.READY, State.READY, State.BLOCKED]
    # A promotion lost with a process: the key has room the rows do not show.
    TaskRecord.objects.filter(pk=int(results[1].id)).update(status=State.CANCELLED)
    assert rescuer.work(store) == 0  # nothing to rescue; the sweep lets the last one in
    assert statuses(results)[3] == State.READY


def test_a_transaction_that_read_before_its_enqueue_sees_the_latest_holders():
    import threading

    from django.db import connection, connections

    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer: the other enqueue would wait for this transaction")

    def elsewhere():
        try:
            partner_calls(2)
        finally:
            connections.close_all()

    if connection.vendor == "mysql":
        # InnoDB's default, which a project may choose over Django's READ COMMITTED.
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try:
        with transaction.atomic():
            # A read first: at REPEATABLE READ the transaction's snapshot is
            # taken here, before the other connection's two enqueues commit.
            assert TaskRecord.objects.count() == 0
            other = threading.Thread(target=elsewhere)
            other.start()
            other.join()
            late = tasks.call_partner.enqueue(9)
    finally:
        connection.close()  # the session's isolation level goes with it
    assert statuses([late]) == [State.BLOCKED]
