"""A paused queue is not claimed, and is claimed again once resumed."""

from django.db import connection

from offload.store import TaskStore, operations
from tests.admin_factory import make_task


def _claim() -> list[str]:
    claimed = TaskStore("default").claim("w1", limit=10, lease_seconds=60)
    return sorted(task.queue_name for task in claimed)


def test_paused_queue_is_not_claimed_and_resumes():
    store = TaskStore("default")
    make_task(queue_name="emails")
    make_task(queue_name="emails")
    make_task(queue_name="default")
    operations.pause_queue(store, "emails", by="ops")
    assert operations.paused_queues(store).keys() == {"emails"}

    assert _claim() == ["default"]
    assert _claim() == []  # the emails are still READY, but paused

    operations.resume_queue(store, "emails")
    assert operations.paused_queues(store) == {}
    assert _claim() == ["emails", "emails"]


def test_pausing_twice_keeps_one_row_and_other_queues_run():
    store = TaskStore("default")
    operations.pause_queue(store, "reports")
    operations.pause_queue(store, "reports", by="again")
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), MAX(paused_by) FROM offload_queue")
        assert tuple(cursor.fetchone()) == (1, "again")
    make_task(queue_name="reports")
    make_task(queue_name="default")
    assert _claim() == ["default"]


def test_a_burst_worker_ends_when_only_paused_queues_hold_due_tasks():
    from tests.app import tasks
    from tests.helpers import drain

    store = TaskStore("default")
    operations.pause_queue(store, "emails")
    held = tasks.send_email.enqueue("ada@example.com")
    ran = tasks.add.enqueue(1, 2)
    stats = drain()
    assert (stats.reason, stats.succeeded) == ("drained", 1)
    # The paused queue's task is not "due" for a worker: nothing else is waiting.
    assert store.seconds_until_due() is None
    assert tasks.add.get_result(ran.id).status == "SUCCESSFUL"
    assert tasks.send_email.get_result(held.id).status == "READY"
