"""What the test kit must do, the same in every kind of test (see test_testing_kit*.py).

Each function takes the kit; the TestCase, TransactionTestCase and pytest
tests call them all.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.tasks import TaskResultStatus

from offload.exceptions import DrainLimitReached
from offload.testing import OffloadTasks, kit
from tests.app import kit_tasks
from tests.app.tasks import add, fail


def runs_a_task_and_stores_its_result(tasks: OffloadTasks) -> None:
    enqueued = add.enqueue(2, 3)
    [result] = tasks.run()
    assert result.id == enqueued.id
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids == ["offload.testing"]
    assert add.get_result(enqueued.id).status == TaskResultStatus.SUCCESSFUL
    assert tasks.run() == []


def sees_the_tests_own_rows(tasks: OffloadTasks) -> None:
    User.objects.create(username="ada")
    kit_tasks.count_users.enqueue()
    kit_tasks.async_double.enqueue(10)
    results = tasks.run()
    assert [r.return_value for r in results] == [1, 21]


def records_a_failure(tasks: OffloadTasks) -> None:
    fail.enqueue("boom")
    [result] = tasks.run()
    assert result.status == TaskResultStatus.FAILED
    assert "boom" in result.errors[-1].traceback


def picks_queues_tasks_and_a_limit(tasks: OffloadTasks) -> None:
    kit_tasks.welcome.enqueue("ada@example.com")
    add.enqueue(1, 1)
    add.enqueue(2, 2)
    [email] = tasks.run(queues=["emails"])
    assert email.return_value == "welcome ada@example.com"
    [first] = tasks.run(limit=1)
    assert first.return_value == 2
    # The task left waiting was not touched by the limit.
    [left] = tasks.assert_enqueued(add, args=[2, 2])
    assert (left.attempt, left.started_at, left.worker_ids) == (0, None, [])
    add.enqueue(3, 3)
    assert [r.return_value for r in tasks.run(tasks=[kit_tasks.chain])] == []
    # Claimed with the others and given back as never claimed.
    assert [(r.attempt, r.worker_ids) for r in tasks.enqueued(add)] == [(0, []), (0, [])]
    assert [r.return_value for r in tasks.run(tasks=["tests.app.tasks.add"])] == [4, 6]


def drains_what_tasks_enqueue(tasks: OffloadTasks) -> None:
    kit_tasks.chain.enqueue(3)
    assert [r.return_value for r in tasks.run(drain=False)] == [3]
    tasks.assert_enqueued(kit_tasks.chain, args=[2], count=1)
    assert [r.return_value for r in tasks.run()] == [2, 1, 0]


def stops_a_task_that_enqueues_itself(tasks: OffloadTasks, monkeypatch: pytest.MonkeyPatch) -> None:
    kit_tasks.forever.enqueue()
    assert len(tasks.run(limit=3)) == 3
    monkeypatch.setattr(kit, "DRAIN_LIMIT", 5)
    with pytest.raises(DrainLimitReached, match="more than 5 attempts"):
        tasks.run()
    tasks.clear()
    kit_tasks.chain.enqueue(4)
    assert len(tasks.run()) == 5  # exactly the limit: a drain that ends


def retries_when_the_clock_says_so(tasks: OffloadTasks) -> None:
    enqueued = kit_tasks.flaky_minute.enqueue(2)
    [first] = tasks.run()
    assert first.status == TaskResultStatus.READY  # its retry is due in a minute
    assert tasks.run() == []
    assert tasks.run(now=tasks.now() + timedelta(seconds=30)) == []
    [second] = tasks.run(now=tasks.now() + timedelta(seconds=31))
    assert second.status == TaskResultStatus.READY
    assert tasks.advance(timedelta(minutes=1)) == 1
    [third] = tasks.run()
    assert third.status == TaskResultStatus.SUCCESSFUL
    assert third.return_value == 3
    assert len(kit_tasks.flaky_minute.get_result(enqueued.id).errors) == 2


def runs_delayed_tasks_once_due(tasks: OffloadTasks) -> None:
    later = tasks.now() + timedelta(hours=1)
    add.using(run_after=later + timedelta(hours=1)).enqueue(1, 2)
    add.using(run_after=later).enqueue(3, 4)
    assert tasks.run() == []
    tasks.assert_enqueued(add, count=2)
    assert [r.return_value for r in tasks.run(now=later)] == [7]
    tasks.advance(timedelta(minutes=59))
    assert tasks.run() == []
    tasks.advance(timedelta(minutes=1))
    assert [r.return_value for r in tasks.run()] == [3]


def asserts_on_what_was_enqueued(tasks: OffloadTasks) -> None:
    add.enqueue(1, 2)
    kit_tasks.welcome.enqueue("ada@example.com")
    [row] = tasks.assert_enqueued(add, args=(1, 2))
    assert row.queue_name == "default"
    tasks.assert_enqueued(queue="emails", kwargs={}, count=1)
    tasks.assert_not_enqueued(add, args=[9, 9])
    with pytest.raises(AssertionError) as failed:
        tasks.assert_enqueued(add, args=[9, 9])
    message = str(failed.value)
    assert "task='tests.app.tasks.add', args=[9, 9]" in message
    assert "tests.app.tasks.add queue='default' args=[1, 2]" in message
    assert "tests.app.kit_tasks.welcome queue='emails'" in message
    with pytest.raises(AssertionError, match=r"Expected no task .*found 1:\n.*args=\[1, 2\]"):
        tasks.assert_not_enqueued(add)
    with pytest.raises(AssertionError, match="Expected 2 task"):
        tasks.assert_enqueued(add, count=2)
    with pytest.raises(ValueError, match="Unknown status"):
        tasks.enqueued(status="DONE")
    tasks.run(tasks=[add])
    assert tasks.enqueued(add) == []
    assert len(tasks.enqueued(add, status="SUCCESSFUL")) == 1
    assert len(tasks.enqueued(status=None)) == 2
    assert tasks.clear() == 2
    assert tasks.enqueued(status=None) == []


SCENARIOS = [
    runs_a_task_and_stores_its_result,
    sees_the_tests_own_rows,
    records_a_failure,
    picks_queues_tasks_and_a_limit,
    drains_what_tasks_enqueue,
    retries_when_the_clock_says_so,
    runs_delayed_tasks_once_due,
    asserts_on_what_was_enqueued,
]
