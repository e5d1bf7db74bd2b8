"""Workflows on every database: chains pass results along, a group's callback
waits for every member and receives their results in order, a failed
upstream stops (or not) what follows, ``after()`` on tasks in any state,
a whole workflow cancelled, and every way a workflow task ends settles the
tasks waiting on it, once."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.models import F
from django.tasks import TaskResultStatus
from django.tasks.exceptions import InvalidTask

from offload.exceptions import ArgumentsMismatch
from offload.models import TaskDependency, TaskRecord
from offload.states import State
from offload.store import TaskStore
from offload.worker.rescue import Rescuer
from offload.workflows import Workflow, after, call, chain, group
from tests.app import tasks
from tests.helpers import LOST, claim_all, drain, statuses


def value_of(result):
    return TaskRecord.objects.get(pk=int(result.id)).return_value


def record(result):
    return TaskRecord.objects.get(pk=int(result.id))


def test_a_chain_passes_each_result_to_the_next_step():
    flow = chain(call(tasks.double, 2), call(tasks.add_to, 3), call(tasks.double)).enqueue()
    assert statuses(flow.results) == [State.READY, State.WAITING, State.WAITING]
    # Django sees a waiting task as waiting to run.
    assert [r.status for r in flow.results] == [TaskResultStatus.READY] * 3
    assert [record(r).waiting_on for r in flow.results] == [None, 1, 1]
    drain()
    assert statuses(flow.results) == [State.SUCCESSFUL] * 3
    assert [value_of(r) for r in flow.results] == [4, 7, 14]
    # The step's stored arguments are its own: the result came at run time.
    assert record(flow.results[1]).args == [3]
    assert [r.id for r in flow.ends] == [flow.results[2].id]


def test_a_chain_of_ten_passes_every_result_along():
    flow = chain(call(tasks.add_to, 0, 1), *[call(tasks.add_to, 1) for _ in range(9)]).enqueue()
    drain()
    assert [value_of(r) for r in flow.results] == list(range(1, 11))
    assert flow.succeeded
    assert flow.finished


def test_a_group_callback_waits_for_every_member_and_gets_their_results_in_order(backend):
    flow = group(call(tasks.double, n) for n in range(5)).then(call(tasks.total)).enqueue()
    callback = flow.results[-1]
    assert record(callback).waiting_on == 5
    claimed = sorted(claim_all(backend), key=lambda task: task.id)
    assert [task.id for task in claimed] == [int(r.id) for r in flow.results[:5]]
    assert all(task.has_dependents for task in claimed)
    # Members end in another order than they were enqueued in: the callback
    # waits for the last, and its list keeps the members' order.
    for task in reversed(claimed[1:]):
        value = str(task.args[0] * 2)
        assert backend.store.complete(task.id, task.attempt, value, 0.1, dependents=[task.id])
        assert statuses([callback]) == [State.WAITING]
    first = claimed[0]
    backend.store.complete_many([(first.id, first.attempt, "0", 0.1)], dependents=[first.id])
    assert statuses([callback]) == [State.READY]
    (task,) = claim_all(backend)
    # What the callback's code receives ahead of its own arguments.
    assert task.upstream == ([0, 2, 4, 6, 8],)
    assert backend.store.complete(task.id, task.attempt, "20", 0.1)
    assert value_of(callback) == 20


def test_a_failed_upstream_cancels_what_follows_it_by_default():
    flow = chain(call(tasks.fail_step, 1), call(tasks.double), call(tasks.double)).enqueue()
    drain()
    assert statuses(flow.results) == [State.FAILED, State.CANCELLED, State.CANCELLED]
    second = tasks.double.get_result(flow.results[1].id)
    assert second.status == TaskResultStatus.FAILED
    assert second.errors[0].exception_class_path == "offload.exceptions.UpstreamFailed"
    assert flow.results[0].id in second.errors[0].traceback
    assert not flow.succeeded
    assert flow.finished


def test_a_callback_that_continues_receives_each_failure_in_its_place():
    flow = (
        group(call(tasks.double, 1), call(tasks.fail_step, 2), call(tasks.double, 3))
        .then(call(tasks.outcomes))
        .enqueue(on_failure="continue")
    )
    drain()
    failed = flow.results[1].id
    assert value_of(flow.results[-1]) == [2, {"failed": failed, "status": "FAILED"}, 6]


def test_a_chain_after_a_group_and_a_group_after_a_call():
    flow = chain(
        call(tasks.double, 5),
        group(call(tasks.add_to, 1), call(tasks.add_to, 2)),
        call(tasks.total),
    ).enqueue()
    drain()
    assert [value_of(r) for r in flow.results] == [10, 11, 12, 23]


def test_after_waits_for_running_tasks_and_runs_at_once_after_ended_ones(backend):
    first, second = tasks.double.enqueue(1), tasks.double.enqueue(2)
    later = after(first, second, pass_results=True).enqueue(tasks.total)
    assert statuses([later]) == [State.WAITING]
    drain()
    assert value_of(later) == 6
    # Every upstream has ended: the task is READY at once, with their results.
    again = after(first.id, second.id, pass_results=True).enqueue(tasks.total)
    assert statuses([again]) == [State.READY]
    drain()
    assert value_of(again) == 6


def test_after_a_failed_task_a_stopping_task_is_cancelled_at_once():
    failed = tasks.fail_step.enqueue(1)
    drain()
    stopped = after(failed).enqueue(tasks.add, 1, 2)
    assert statuses([stopped]) == [State.CANCELLED]
    going = after(failed, on_failure="continue").enqueue(tasks.add, 1, 2)
    drain()
    assert value_of(going) == 3


def test_after_joins_the_workflow_of_its_upstreams():
    flow = chain(call(tasks.double, 1), call(tasks.double)).enqueue()
    extra = after(flow.results[-1], pass_results=True).enqueue(tasks.total)
    assert record(extra).workflow_id == int(flow.id)
    drain()
    found = Workflow.get(flow.id)
    assert [r.id for r in found.results] == [*(r.id for r in flow.results), extra.id]
    assert [r.id for r in found.ends] == [extra.id]
    assert value_of(extra) == 4


def test_cancelling_a_workflow_cancels_every_task_not_ended():
    flow = group(call(tasks.double, n) for n in range(3)).then(call(tasks.total)).enqueue()
    assert flow.cancel() == 4
    assert statuses(flow.results) == [State.CANCELLED] * 4
    drain()
    assert statuses(flow.results) == [State.CANCELLED] * 4


def test_cancelling_one_member_stops_the_callback():
    flow = group(call(tasks.double, 1), call(tasks.double, 2)).then(call(tasks.total)).enqueue()
    tasks.double.get_backend().cancel(flow.results[0].id)
    assert statuses(flow.results) == [State.CANCELLED, State.READY, State.CANCELLED]
    drain()
    assert statuses(flow.results) == [State.CANCELLED, State.SUCCESSFUL, State.CANCELLED]


def test_a_rescue_that_gives_up_on_an_upstream_settles_its_dependents(backend):
    flow = chain(call(tasks.fail_step, 1), call(tasks.double)).enqueue()
    (claimed,) = claim_all(backend)
    assert backend.store.attempt_lost(claimed.id, claimed.attempt, LOST, 0.0)
    assert statuses(flow.results) == [State.FAILED, State.CANCELLED]


def test_the_rescuer_heals_a_dependency_its_upstreams_worker_did_not_know(backend):
    upstream = tasks.double.enqueue(4)
    (claimed,) = claim_all(backend)  # claimed before anything waited on it
    assert not claimed.has_dependents
    later = after(upstream, pass_results=True).enqueue(tasks.total)
    assert record(upstream).has_dependents
    # Its worker writes the outcome as it learned from the claim: nothing to settle.
    assert backend.store.complete(claimed.id, claimed.attempt, "8", 0.1, dependents=[])
    assert statuses([later]) == [State.WAITING]
    Rescuer("default", backend.config, "w-test").work(backend.store)
    assert statuses([later]) == [State.READY]
    drain()
    assert value_of(later) == 8


def test_the_rescuer_lets_a_task_go_whose_upstream_was_deleted(backend):
    flow = chain(call(tasks.double, 1), call(tasks.double)).enqueue()
    TaskRecord.objects.filter(pk=int(flow.results[0].id)).delete()
    Rescuer("default", backend.config, "w-test").work(backend.store)
    assert statuses(flow.results[1:]) == [State.READY]
    (claimed,) = claim_all(backend)
    assert claimed.upstream[0].status == "DELETED"


def test_a_workflow_enqueued_in_a_rolled_back_transaction_leaves_nothing():
    def enqueue_then_fail():
        with transaction.atomic():
            chain(call(tasks.double, 1), call(tasks.double)).enqueue()
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        enqueue_then_fail()
    assert TaskRecord.objects.count() == 0
    assert TaskDependency.objects.count() == 0


def test_bad_workflows_are_refused_before_anything_is_written():
    with pytest.raises(ArgumentsMismatch, match="too many positional"):
        # double takes one argument: the previous result fills it.
        chain(call(tasks.double, 1), call(tasks.double, 5)).enqueue()
    with pytest.raises(InvalidTask, match="at least one"):
        chain()
    with pytest.raises(InvalidTask, match="at least one"):
        group([])
    with pytest.raises(InvalidTask, match="on_failure"):
        chain(call(tasks.double, 1)).enqueue(on_failure="maybe")
    with pytest.raises(InvalidTask, match="share one backend"):
        chain(call(tasks.double, 1), call(tasks.double.using(backend="separate"))).enqueue()
    with pytest.raises(InvalidTask, match="cannot be unique"):
        chain(call(tasks.sync_customer, 1)).enqueue()
    with pytest.raises(InvalidTask, match="step must be"):
        chain(call(tasks.double, 1), "not a step")  # type: ignore[arg-type]
    with pytest.raises(InvalidTask, match="results or ids"):
        after("nine")
    assert TaskRecord.objects.count() == 0


def test_two_members_ending_at_once_make_the_callback_ready_once(backend):
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer: the two outcomes cannot overlap")
    flow = group(call(tasks.double, 1), call(tasks.double, 2)).then(call(tasks.total)).enqueue()
    one, two = sorted(claim_all(backend), key=lambda task: task.id)
    in_first = threading.Event()

    def finish_first():
        # Django's connection in this thread is its own.
        try:
            with transaction.atomic():
                TaskStore("default").complete(
                    one.id, one.attempt, "2", 0.1, keys=[], dependents=[one.id]
                )
                in_first.set()
                # The other member ends meanwhile: its decrement waits for
                # this transaction's lock on the callback's row.
                time.sleep(0.5)
        finally:
            connections.close_all()

    first = threading.Thread(target=finish_first)
    first.start()
    assert in_first.wait(10)
    assert backend.store.complete(two.id, two.attempt, "4", 0.1, keys=[], dependents=[two.id])
    first.join()
    assert statuses(flow.results) == [State.SUCCESSFUL, State.SUCCESSFUL, State.READY]
    assert record(flow.results[-1]).waiting_on == 0
    drain()
    assert value_of(flow.results[-1]) == 6


def test_pruning_a_workflow_deletes_its_links_with_its_tasks(backend):
    from datetime import timedelta

    from offload.retention import PruneRun, Rule

    flow = chain(call(tasks.double, 1), call(tasks.double)).enqueue()
    other = chain(call(tasks.double, 1), call(tasks.double)).enqueue()
    drain()
    assert TaskDependency.objects.count() == 2
    ids = [int(r.id) for r in flow.results]
    TaskRecord.objects.filter(pk__in=ids).update(finished_at=F("finished_at") - timedelta(days=9))
    run = PruneRun(backend.store, batch_size=10)
    assert run.tasks(Rule(State.SUCCESSFUL, timedelta(days=1))) == 2
    assert run.links() == 1
    # The other workflow's link stays with its tasks.
    (kept,) = TaskDependency.objects.all()
    assert kept.task_id == int(other.results[1].id)


def test_a_group_goes_in_through_bulk_inserts_and_a_bad_member_leaves_nothing():
    members = [call(tasks.double, n) for n in range(300)]
    flow = group(members).then(call(tasks.total)).enqueue()
    assert len(flow.results) == 301
    assert record(flow.results[-1]).waiting_on == 300
    drain()
    assert value_of(flow.results[-1]) == sum(2 * n for n in range(300))
    before = TaskRecord.objects.count()
    bad = [call(tasks.double, 1), call(tasks.double, 1, 2), call(tasks.double, 3)]
    with pytest.raises(ArgumentsMismatch, match=r"calls\[1\]"):
        group(bad).then(call(tasks.total)).enqueue()
    assert TaskRecord.objects.count() == before


def test_run_again_of_a_step_receives_the_same_upstream_results(backend):
    from offload.store import operations

    flow = chain(call(tasks.double, 3), call(tasks.add_to, 1)).enqueue()
    drain()
    (copy,) = operations.run_again(backend.store, [int(flow.results[1].id)])
    assert TaskRecord.objects.get(pk=copy).workflow_id == int(flow.id)
    drain()
    assert TaskRecord.objects.get(pk=copy).return_value == 7


def test_a_step_with_a_concurrency_key_waits_for_its_key_once_due(backend):
    holders = [tasks.call_partner.enqueue(n) for n in range(2)]  # the key's two slots
    flow = chain(call(tasks.double, 1), call(tasks.call_partner)).enqueue()
    assert statuses(flow.results) == [State.READY, State.WAITING]
    claimed = {task.id: task for task in claim_all(backend)}
    first = claimed[int(flow.results[0].id)]
    backend.store.complete(first.id, first.attempt, "2", 0.1, dependents=first.dependents)
    # Due, but its key is full: it waits at the key's gate, not in a queue.
    assert statuses(flow.results) == [State.SUCCESSFUL, State.BLOCKED]
    holder = claimed[int(holders[0].id)]
    backend.store.complete(holder.id, holder.attempt, "0", 0.1, keys=holder.keys)
    assert statuses(flow.results[1:]) == [State.READY]
    drain()
    assert value_of(flow.results[1]) == 2
