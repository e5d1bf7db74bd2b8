"""The store's reliability statements on every database: unclaim, lost attempts,
lease rescue, heartbeats, the rescuer's lease, cancellation and unreadable rows."""

import json

from django.db import connection
from django.tasks import TaskResultStatus

from offload.backend import cancel_error_json
from offload.failures import NOT_STARTED, AttemptEnd
from offload.models import TaskRecord, WorkerRecord
from offload.states import State
from tests.app import tasks

ERROR = json.dumps({"exception_class_path": "x.Lost", "traceback": "lost\n"})


def test_enqueue_stores_the_retry_budget_and_timeout(backend):
    plain = tasks.add.enqueue(1, 2)
    limited = tasks.limited.enqueue()
    flaky = tasks.flaky.enqueue(0, "m")
    rows = {r.pk: r for r in TaskRecord.objects.all()}
    # A plain @task takes OPTIONS["RETRY"]; the test settings keep the default of 3.
    assert (rows[int(plain.id)].max_attempts, rows[int(plain.id)].timeout) == (3, None)
    assert (rows[int(limited.id)].max_attempts, rows[int(limited.id)].timeout) == (2, 30.0)
    assert rows[int(flaky.id)].max_attempts == 4


def test_releasing_an_unstarted_task_undoes_its_claim(backend):
    store = backend.store
    tasks.add.enqueue(1, 2)
    (first,) = store.claim("w-a", limit=1, lease_seconds=60)
    assert store.release(first.id, first.attempt, NOT_STARTED)
    row = TaskRecord.objects.get(pk=first.id)
    assert (row.status, row.attempt, row.worker_ids) == (State.READY, 0, [])

    (again,) = store.claim("w-b", limit=1, lease_seconds=60)
    assert (again.attempt, again.worker_ids) == (1, ["w-b"])
    # A task that started keeps the attempt it used.
    assert store.release(again.id, again.attempt, AttemptEnd(ERROR))
    row = TaskRecord.objects.get(pk=first.id)
    assert (row.status, row.attempt, row.worker_ids) == (State.READY, 1, ["w-b"])


def test_release_owner_can_unclaim_every_task_of_a_dead_process(backend):
    store = backend.store
    for i in range(3):
        tasks.add.enqueue(i, i)
    claimed = store.claim("w-dead", limit=3, lease_seconds=60)
    assert len(claimed) == 3
    assert store.release_owner("w-dead") == 3
    assert set(TaskRecord.objects.values_list("status", "attempt")) == {(State.READY, 0)}
    assert all(r.worker_ids == [] for r in TaskRecord.objects.all())


def test_a_lost_attempt_is_retried_until_the_budget_is_spent(backend):
    store = backend.store
    result = tasks.limited.enqueue()  # max_attempts=2
    (first,) = store.claim("w-a", limit=1, lease_seconds=60)
    assert store.attempt_lost(first.id, first.attempt, AttemptEnd(ERROR), 0.0)
    row = TaskRecord.objects.get(pk=first.id)
    assert (row.status, row.finished_at, row.lease_owner) == (State.READY, None, None)
    assert [e["exception_class_path"] for e in row.errors] == ["x.Lost"]
    # A stale second report of the same attempt changes nothing.
    assert not store.attempt_lost(first.id, first.attempt, AttemptEnd(ERROR), 0.0)

    (second,) = store.claim("w-b", limit=1, lease_seconds=60)
    assert store.attempt_lost(second.id, second.attempt, AttemptEnd(ERROR), 0.0)
    row = TaskRecord.objects.get(pk=first.id)
    assert row.status == State.FAILED
    assert row.finished_at is not None
    assert len(row.errors) == 2
    assert backend.get_result(result.id).status == TaskResultStatus.FAILED


def test_a_lost_attempt_waits_out_its_delay(backend):
    store = backend.store
    tasks.limited.enqueue()
    (first,) = store.claim("w-a", limit=1, lease_seconds=60)
    assert store.attempt_lost(first.id, first.attempt, AttemptEnd(ERROR), 3600.0)
    assert store.claim("w-b", limit=1, lease_seconds=60) == []
    assert 3500 < store.seconds_until_due() <= 3600


def test_rescue_takes_only_expired_leases(backend):
    store = backend.store
    tasks.add.enqueue(1, 1)
    tasks.add.enqueue(2, 2)
    (expired,) = store.claim("w-gone", limit=1, lease_seconds=-1)
    (alive,) = store.claim("w-alive", limit=1, lease_seconds=60)
    found = store.expired_leases(100)
    assert [(t, a, o, k, d) for t, a, _m, o, k, d in found] == [(expired.id, 1, "w-gone", [], [])]
    assert not store.attempt_lost(alive.id, alive.attempt, AttemptEnd(ERROR), 0, expired_only=True)
    assert store.attempt_lost(expired.id, expired.attempt, AttemptEnd(ERROR), 0, expired_only=True)
    assert TaskRecord.objects.get(pk=expired.id).status == State.READY
    assert TaskRecord.objects.get(pk=alive.id).status == State.RUNNING


def test_heartbeat_renews_leases_and_reports_cancel_requests(backend):
    store = backend.store
    store.register_worker(
        worker_id="w-a", name="w", hostname="h", pid=1, supervisor_pid=1,
        backend="default", queues="default", threads=1,
    )  # fmt: skip
    first = tasks.add.enqueue(1, 1)
    tasks.add.enqueue(2, 2)
    claimed = store.claim("w-a", limit=2, lease_seconds=-1)
    assert len(claimed) == 2
    assert len(store.expired_leases(10)) == 2
    beat = store.heartbeat("w-a", 60)
    assert beat is not None
    assert beat.cancels == []
    assert beat.held == {task.id: task.attempt for task in claimed}
    assert store.expired_leases(10) == []

    assert backend.cancel(first.id) == "requested"
    beat = store.heartbeat("w-a", 60)
    assert beat is not None
    assert beat.cancels == [int(first.id)]
    assert WorkerRecord.objects.get(pk="w-a").heartbeat_at is not None
    # Another owner's heartbeat renews nothing of this one's.
    assert store.heartbeat("w-other", 60) is None  # no such worker row


def test_workers_silent_for_too_long_are_forgotten(backend):
    store = backend.store
    store.register_worker(
        worker_id="w-a", name="w", hostname="h", pid=1, supervisor_pid=1,
        backend="default", queues="default", threads=1,
    )  # fmt: skip
    assert store.forget_silent_workers(60) == 0
    assert store.forget_silent_workers(-1) == 1
    assert not WorkerRecord.objects.exists()


def test_only_one_owner_holds_a_lease_until_it_expires(backend):
    store = backend.store
    assert store.hold_lease("rescuer", "a", 60)
    assert not store.hold_lease("rescuer", "b", 60)
    assert store.hold_lease("rescuer", "a", 60)  # renewing
    assert store.hold_lease("rescuer", "a", -1)  # ... to an expired lease
    assert store.hold_lease("rescuer", "b", 60)  # which another owner takes over
    assert not store.hold_lease("rescuer", "a", 60)
    store.drop_lease("rescuer", "b")
    assert store.hold_lease("rescuer", "a", 60)


def test_cancel_stops_a_ready_task_for_good(backend):
    result = tasks.add.enqueue(1, 2)
    assert backend.cancel(result.id) == "cancelled"
    assert backend.store.claim("w", limit=10, lease_seconds=60) == []
    fetched = backend.get_result(result.id)
    assert fetched.status == TaskResultStatus.FAILED  # Django has no cancelled status
    assert fetched.errors[0].exception_class_path == "offload.exceptions.TaskCancelled"
    assert TaskRecord.objects.get(pk=int(result.id)).status == State.CANCELLED
    assert backend.cancel(result.id) == "finished"


def test_cancelled_records_the_end_of_a_running_attempt(backend):
    store = backend.store
    result = tasks.add.enqueue(1, 2)
    (claimed,) = store.claim("w", limit=1, lease_seconds=60)
    assert backend.cancel(result.id) == "requested"
    assert store.cancelled(claimed.id, claimed.attempt, cancel_error_json())
    row = TaskRecord.objects.get(pk=claimed.id)
    assert row.status == State.CANCELLED
    assert row.cancel_requested_at is not None


def test_an_unreadable_row_is_claimed_with_its_problem_not_an_error(backend):
    tasks.add.enqueue(1, 2)
    good = tasks.add.enqueue(3, 4)
    bad_id = TaskRecord.objects.order_by("pk").first().pk
    # Every engine checks that the column holds JSON, so "corrupt" here means
    # JSON of the wrong shape: arguments that are not a list.
    broken = "{}"
    with connection.cursor() as cursor:
        table = TaskRecord._meta.db_table
        value = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
        cursor.execute(f"UPDATE {table} SET args = {value} WHERE id = %s", [broken, bad_id])
    claimed = {t.id: t for t in backend.store.claim("w", limit=10, lease_seconds=60)}
    assert claimed[bad_id].problem is not None
    assert claimed[int(good.id)].problem is None
    assert claimed[int(good.id)].args == [3, 4]
