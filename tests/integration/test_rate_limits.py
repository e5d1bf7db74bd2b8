"""Rate limits on every database: the gate at enqueue, the window sliding
with the database's clock, the promotion by the rate promoter, retries,
operators' retries, inside the caller's transaction, in bulk, bad values, and
nothing more for tasks without a rate key.

The test tasks' rate is per minute, so no window slides during a test: the
tests slide it by moving ``claimed_at`` back, as time would."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.tasks import TaskResultStatus
from django.tasks.exceptions import InvalidTask
from django.utils import timezone

import offload
from offload.models import TaskRecord
from offload.states import State
from offload.store import operations
from offload.task import task as offload_task
from offload.worker.rate_promoter import IDLE_SECONDS, RatePromoter
from tests.app import tasks
from tests.helpers import LOST, claim_all, statuses


def slide(seconds):
    """Move every claim ``seconds`` back, as the window sliding would."""
    TaskRecord.objects.filter(claimed_at__isnull=False).update(
        claimed_at=F("claimed_at") - timedelta(seconds=seconds)
    )


def calls(count):
    return [tasks.rated_call.enqueue(n) for n in range(count)]


def test_the_gate_lets_the_count_in_and_blocks_the_rest():
    results = calls(3)
    assert statuses(results) == [State.READY, State.READY, State.BLOCKED]
    assert results[2].status == TaskResultStatus.READY  # Django: waiting to run
    record = TaskRecord.objects.get(pk=int(results[2].id))
    assert (record.rate_key, record.rate_count, record.rate_period) == ("partner-rate", 2, 60.0)


def test_a_key_built_from_the_arguments_limits_each_key_apart():
    results = [tasks.rated_region.enqueue(r) for r in ("eu", "eu", "us")]
    assert statuses(results) == [State.READY, State.BLOCKED, State.READY]


def test_claims_within_the_period_fill_the_window_until_they_leave_it(backend):
    first = calls(2)
    for claimed in claim_all(backend):
        assert backend.store.complete(claimed.id, claimed.attempt, "1", 0.0)
    # Both ended, but their starts are within the minute: no room.
    (late,) = calls(1)
    assert statuses([late]) == [State.BLOCKED]
    assert backend.store.promote_rate("default", "partner-rate") is not None
    assert statuses([late]) == [State.BLOCKED]
    slide(59)  # still inside the minute, by a second
    wait = backend.store.promote_rate("default", "partner-rate")
    assert wait is not None
    assert 0 < wait <= 1.5
    assert statuses([late]) == [State.BLOCKED]
    slide(2)  # now out of it
    assert backend.store.promote_rate("default", "partner-rate") is None
    assert statuses([*first, late]) == [State.SUCCESSFUL, State.SUCCESSFUL, State.READY]


def test_a_ready_task_holds_its_slot_until_claimed_and_a_period_after(backend):
    results = calls(3)
    slide(3600)  # nothing was claimed: nothing moves
    backend.store.promote_rate("default", "partner-rate")
    assert statuses(results)[2] == State.BLOCKED
    claim_all(backend)
    backend.store.promote_rate("default", "partner-rate")
    assert statuses(results)[2] == State.BLOCKED
    slide(61)
    backend.store.promote_rate("default", "partner-rate")
    assert statuses(results)[2] == State.READY


def test_the_promoter_role_promotes_and_sleeps_until_the_next_slot(backend):
    results = calls(4)
    claim_all(backend)
    promoter = RatePromoter("default", "tests-promoter")
    assert promoter.turn() == 1  # one key looked at; the window is full
    assert statuses(results)[2:] == [State.BLOCKED, State.BLOCKED]
    assert promoter.pause_seconds() == IDLE_SECONDS  # the next slot is a minute away
    slide(59.8)
    promoter.turn()
    assert 0.002 <= promoter.pause_seconds() <= 0.5  # the slot frees in about 0.2 s
    slide(1)
    promoter.turn()
    assert statuses(results)[2:] == [State.READY, State.READY]
    promoter.turn()
    assert promoter.pause_seconds() == IDLE_SECONDS  # no key waits
    # Only the holder of the lease promotes.
    other = RatePromoter("default", "another-host")
    calls(1)
    assert other.turn() == 0


@pytest.mark.parametrize("how", ["retry", "rescue"])
def test_a_retry_waits_blocked_until_its_own_start_leaves_the_window(backend, how):
    (result,) = calls(1)
    (claimed,) = claim_all(backend)
    store = backend.store
    if how == "retry":
        assert store.retry(claimed.id, claimed.attempt, "[]", 0.0)
    else:
        assert store.attempt_lost(claimed.id, claimed.attempt, LOST, 0.0)  # 3 attempts
    assert statuses([result]) == [State.BLOCKED]
    # The window has room for one more, but not for this task's second start
    # while its first is inside it.
    store.promote_rate("default", "partner-rate")
    assert statuses([result]) == [State.BLOCKED]
    other = calls(1)
    assert statuses(other) == [State.READY]
    slide(61)
    store.promote_rate("default", "partner-rate")
    assert statuses([result]) == [State.READY]


def test_a_task_due_later_waits_blocked_until_due(backend):
    later = tasks.rated_call.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1)
    now = calls(1)
    assert statuses([later, *now]) == [State.BLOCKED, State.READY]
    backend.store.promote_rate("default", "partner-rate")
    assert statuses([later]) == [State.BLOCKED]
    due = timezone.now() - timedelta(seconds=1)
    TaskRecord.objects.filter(pk=int(later.id)).update(available_at=due)
    backend.store.promote_rate("default", "partner-rate")
    assert statuses([later]) == [State.READY]


def test_an_operators_retry_and_run_again_pass_the_gate(backend):
    results = calls(2)
    first, _ = claim_all(backend)
    assert backend.store.fail(first.id, first.attempt, "[]")
    assert operations.retry(backend.store, [first.id]) == 1
    assert statuses(results)[0] == State.BLOCKED  # two starts within the minute
    (copy,) = operations.run_again(backend.store, [first.id])
    assert TaskRecord.objects.get(pk=copy).status == State.BLOCKED
    slide(61)
    backend.store.promote_rate("default", "partner-rate")
    found = dict(TaskRecord.objects.values_list("pk", "status"))
    assert sorted([found[first.id], found[copy]]) == [State.READY, State.READY]
    record = TaskRecord.objects.get(pk=copy)
    assert (record.rate_key, record.rate_count, record.rate_period) == ("partner-rate", 2, 60.0)


def test_inside_the_callers_transaction_and_a_rollback_takes_no_slot():
    with transaction.atomic():
        results = calls(3)
        assert statuses(results) == [State.READY, State.READY, State.BLOCKED]
        transaction.set_rollback(True)
    assert TaskRecord.objects.count() == 0
    with transaction.atomic():
        assert statuses(calls(2)) == [State.READY, State.READY]


def test_enqueue_many_passes_each_call_through_the_gate():
    results = offload.enqueue_many(tasks.rated_call, [([n], {}) for n in range(4)])
    assert statuses(results) == [State.READY] * 2 + [State.BLOCKED] * 2
    regions = offload.enqueue_many(tasks.rated_region, [(["a"], {}), (["b"], {}), (["a"], {})])
    assert statuses(regions) == [State.READY, State.READY, State.BLOCKED]


def test_a_rate_per_call_and_none():
    per_call = tasks.add.rate_limited("adds", "1/h")
    assert statuses([per_call.enqueue(1, 1), per_call.enqueue(1, 2)]) == [
        State.READY, State.BLOCKED,
    ]  # fmt: skip
    unlimited = tasks.rated_call.rate_limited(None)
    assert statuses([unlimited.enqueue(n) for n in range(3)]) == [State.READY] * 3
    assert tasks.add.rate_limited("k", (3, 2)).rate_of([], {}).period == 2.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_key": 5, "rate_limit": "1/s"}, "rate_key must be a string"),
        ({"rate_key": "", "rate_limit": "1/s"}, "rate_key must not be empty"),
        ({"rate_key": "k" * 256, "rate_limit": "1/s"}, "the most is 255"),
        ({"rate_key": "k", "rate_limit": "20"}, "rate_limit must be"),
        ({"rate_key": "k", "rate_limit": "20/d"}, "rate_limit must be"),
        ({"rate_key": "k", "rate_limit": "-1/s"}, "rate_limit must be"),
        ({"rate_key": "k", "rate_limit": "0/s"}, "count must be a whole number"),
        ({"rate_key": "k", "rate_limit": (2.5, 1)}, "count must be a whole number"),
        ({"rate_key": "k", "rate_limit": (True, 1)}, "count must be a whole number"),
        ({"rate_key": "k", "rate_limit": (2, 0)}, "period must be a number of seconds"),
        ({"rate_key": "k", "rate_limit": (2, float("inf"))}, "period must be"),
        ({"rate_key": "k", "rate_limit": (2, 1, 3)}, "rate_limit must be"),
        ({"rate_key": "k"}, "rate_key and rate_limit go together"),
        ({"rate_limit": "1/s"}, "rate_key and rate_limit go together"),
        (
            {"rate_key": "k", "rate_limit": "1/s", "concurrency_key": "c"},
            "cannot be combined with concurrency_key",
        ),
        (
            {"rate_key": "k", "rate_limit": "1/s", "unique_key": "u"},
            "cannot be combined with unique_key",
        ),
    ],
)
def test_bad_values_are_refused(options, message):
    with pytest.raises(InvalidTask, match=message):
        offload_task(**options)(lambda: None)
    if "rate_key" in options and "rate_limit" in options and len(options) == 2:
        with pytest.raises(InvalidTask, match=message):  # the same checks for one call
            tasks.add.rate_limited(options["rate_key"], options["rate_limit"])
    assert TaskRecord.objects.count() == 0


def test_a_callable_key_that_fails_enqueues_nothing():
    with pytest.raises(InvalidTask, match="rate_key raised ZeroDivisionError"):
        tasks.echo.rate_limited(lambda *args: 1 / 0, "1/s").enqueue()
    with pytest.raises(InvalidTask, match=r"calls\[1\]"):
        offload.enqueue_many(
            tasks.echo.rate_limited(lambda x: None if x else 3, "1/s"), [([1], {}), ([0], {})]
        )
    tasks.echo.rate_limited(lambda *args: None, "1/s").enqueue()  # None: no limit
    assert TaskRecord.objects.filter(rate_key__isnull=True).count() == 1


def test_a_task_without_a_rate_key_pays_no_statement(backend):
    from tests.integration.test_sql_golden import executed

    with executed() as seen:
        tasks.add.enqueue(1, 2)
    assert seen
    assert not any("rate_" in sql for sql in seen)
    (claimed,) = claim_all(backend)
    # The retry is one statement, whose status tells the two apart in SQL.
    with executed() as seen:
        assert backend.store.retry(claimed.id, claimed.attempt, "[]", 0.0)
    assert len(seen) == 1
    assert "offload_rate_key" not in seen[0]
    assert statuses([claimed]) == [State.READY]
    with executed() as seen:
        offload.enqueue_many(tasks.add, [([1, n], {}) for n in range(3)])
    assert seen
    assert not any("rate_" in sql for sql in seen)


def test_the_window_and_the_promotion_read_their_indexes(backend):
    from offload.store.rate_gate import promotable_sql, window_sql

    calls(3)
    tasks.add.enqueue(1, 1)
    store, vendor = backend.store, backend.store.vendor
    window = window_sql(vendor)
    plan = " ".join(store._explain(window, ["default", "partner-rate", -60.0]))
    blocked = promotable_sql(vendor)
    blocked_plan = " ".join(store._explain(blocked, ["default", "partner-rate", -60.0, 10]))
    assert "offload_task_rate_blocked_idx" in blocked_plan
    if connection.vendor == "mysql":
        assert "offload_task_rate_blocked_idx" in plan
    else:
        assert "offload_task_rate_window_idx" in plan
