"""The store's fenced writes and the worker's handling of rows it cannot run."""

from django.db import connection, transaction
from django.tasks import TaskResultStatus
from django.utils import timezone

from offload.failures import AttemptEnd
from offload.models import TaskRecord
from offload.states import State
from offload.store import QueueFilter
from tests.app import tasks
from tests.helpers import drain

# A release after the task's code started (see failures.cut_short).
STARTED = AttemptEnd('{"exception_class_path": "x.GivenBack", "traceback": ""}')


def _rescue(task_id: int) -> None:
    """Stand-in for crash recovery: put a RUNNING task back to READY."""
    TaskRecord.objects.filter(pk=task_id).update(status=State.READY, lease_owner=None)


def test_a_stale_attempt_cannot_overwrite_a_newer_one(backend):
    store = backend.store
    result = tasks.add.enqueue(1, 2)
    (first,) = store.claim("worker-a", limit=1, lease_seconds=60)
    assert first.attempt == 1
    _rescue(first.id)
    (second,) = store.claim("worker-b", limit=1, lease_seconds=60)
    assert second.id == first.id
    assert second.attempt == 2
    assert second.worker_ids == ["worker-a", "worker-b"]

    # Worker A wakes up and reports: every write is refused.
    assert store.complete(first.id, first.attempt, "3", 0.0) is False
    assert store.fail(first.id, first.attempt, "[]") is False
    assert store.release(first.id, first.attempt, STARTED) is False
    row = TaskRecord.objects.get(pk=first.id)
    assert (row.status, row.attempt, row.lease_owner) == (State.RUNNING, 2, "worker-b")

    assert store.complete(second.id, second.attempt, "3", 0.0) is True
    assert store.complete(second.id, second.attempt, "4", 0.0) is False  # finished is final
    fetched = backend.get_result(result.id)
    assert fetched.status == TaskResultStatus.SUCCESSFUL
    assert fetched.return_value == 3
    assert fetched.attempts == 2


def test_claim_takes_a_lease_on_the_database_clock(backend):
    tasks.noop.enqueue()
    before = timezone.now()
    (claimed,) = backend.store.claim("w", limit=1, lease_seconds=120)
    row = TaskRecord.objects.get(pk=claimed.id)
    assert row.lease_owner == "w"
    assert row.status == State.RUNNING
    lease = (row.lease_expires_at - before).total_seconds()
    assert 115 < lease < 125


def test_release_returns_a_task_for_another_worker(backend):
    result = tasks.add.enqueue(2, 2)
    (claimed,) = backend.store.claim("w1", limit=1, lease_seconds=60)
    assert backend.store.release(claimed.id, claimed.attempt, STARTED) is True
    row = TaskRecord.objects.get(pk=claimed.id)
    assert (row.status, row.lease_owner, row.lease_expires_at) == (State.READY, None, None)
    drain()
    done = backend.get_result(result.id)
    assert done.return_value == 4
    assert done.attempts == 2


def test_claim_never_returns_more_than_asked(backend):
    for _ in range(7):
        tasks.noop.enqueue()
    assert len(backend.store.claim("w", limit=3, lease_seconds=60)) == 3
    assert len(backend.store.claim("w", limit=3, lease_seconds=60)) == 3
    assert len(backend.store.claim("w", limit=3, lease_seconds=60)) == 1
    assert backend.store.claim("w", limit=3, lease_seconds=60) == []
    assert backend.store.claim("w", queues=QueueFilter(only=()), limit=3, lease_seconds=60) == []


def _insert_raw_row(task_path: str) -> int:
    ok = tasks.noop.enqueue()
    TaskRecord.objects.filter(pk=ok.id).update(task_path=task_path)
    return int(ok.id)


def test_rows_that_do_not_resolve_fail_clearly_and_block_nothing(backend):
    missing = _insert_raw_row("tests.app.gone.vanished")
    plain_function = _insert_raw_row("tests.app.tasks.not_a_task")
    good = tasks.add.enqueue(1, 1)
    stats = drain()
    assert (stats.succeeded, stats.failed) == (1, 2)
    assert backend.get_result(good.id).return_value == 2
    for task_id, fragment in [
        (missing, "does not import"),
        (plain_function, "not a django.tasks Task"),
    ]:
        row = TaskRecord.objects.get(pk=task_id)
        assert row.status == State.FAILED
        assert row.errors[0]["exception_class_path"] == "offload.exceptions.TaskNotImportable"
        assert fragment in row.errors[0]["traceback"]


def test_the_claim_query_uses_the_claim_index(backend):
    """The claim's SELECT must be served by a claim index, not a table scan.

    On a table this small either claim index serves it at the same cost (the
    planner may pick either); test_claim_plan checks the choice on a backlog.
    """
    vendor = connection.vendor
    sql = (
        "SELECT id FROM offload_task WHERE status = 'READY' AND queue_name = 'default' "
        "AND available_at <= {now} ORDER BY priority DESC, available_at, id LIMIT 10"
    ).format(now=backend.store.vendor.now.replace("%%", "%"))
    explain = {
        "sqlite": "EXPLAIN QUERY PLAN ",
        "postgresql": "EXPLAIN ",
        "mysql": "EXPLAIN ",
    }[vendor]
    with transaction.atomic(), connection.cursor() as cursor:
        if vendor == "postgresql":
            # A fresh, tiny table would be scanned sequentially however good the
            # index is; take the cost model out of the question.
            cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(explain + sql)
        plan = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
    assert "offload_task_claim_idx" in plan or "offload_task_claim_all_idx" in plan, plan


def test_get_result_of_a_row_whose_task_is_gone_says_so(backend):
    import pytest

    from offload.exceptions import TaskNotImportable

    task_id = _insert_raw_row("tests.app.gone.vanished")
    with pytest.raises(TaskNotImportable, match="does not import"):
        backend.get_result(str(task_id))


def test_complete_many_writes_each_value_and_fences_each_row(backend):
    store = backend.store
    results = [tasks.add.enqueue(n, n) for n in range(5)]
    claimed = store.claim("worker-a", limit=5, lease_seconds=60)
    assert len(claimed) == 5
    # One task lost its claim (rescued and claimed again by another worker):
    # its old attempt's outcome must not be written.
    lost = claimed[2]
    _rescue(lost.id)
    (again,) = store.claim("worker-b", limit=1, lease_seconds=60)
    assert again.id == lost.id

    value = '{{"n": {}, "s": "\\u00e9\'"}}'
    done = [(task.id, task.attempt, value.format(i), 0.0) for i, task in enumerate(claimed)]
    written = store.complete_many(done)
    assert written == {task.id for task in claimed} - {lost.id}

    for i, task in enumerate(claimed):
        row = TaskRecord.objects.get(pk=task.id)
        if task.id == lost.id:
            assert (row.status, row.attempt, row.lease_owner) == (State.RUNNING, 2, "worker-b")
            continue
        assert row.status == State.SUCCESSFUL
        assert row.return_value == {"n": i, "s": "é'"}
        assert row.finished_at is not None
        assert row.lease_owner is None
        assert row.lease_expires_at is None
    assert backend.get_result(results[0].id).return_value == {"n": 0, "s": "é'"}
    # Finished is final: a second batch for the same attempts changes nothing.
    # (MariaDB, with no UPDATE ... RETURNING, reports the rows this attempt
    # already finished; the other engines report what this statement wrote.)
    again_done = [(task_id, attempt, "0", 0.0) for task_id, attempt, _, _ in done]
    assert store.complete_many(again_done) <= written
    assert backend.get_result(results[1].id).return_value == {"n": 1, "s": "é'"}
    assert store.complete_many([]) == set()
