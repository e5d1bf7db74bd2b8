"""Retries, cancellation and unreadable rows, through a real worker on every database."""

import inspect

import pytest
from django.db import connection
from django.tasks import TaskResultStatus
from django.tasks import task as django_task
from django.tasks.signals import task_finished

from offload.exceptions import InvalidTaskOptions
from offload.models import TaskRecord
from offload.states import State
from offload.task import task as offload_task
from tests.app import tasks
from tests.app.models import Run
from tests.helpers import drain, running_worker, wait_for


def module_level() -> None:
    """Django accepts only module-level functions as tasks."""


def test_a_listed_exception_is_retried_until_the_task_succeeds(backend):
    result = tasks.flaky.enqueue(2, "flaky")
    finished = []

    def on_finished(sender, task_result, **kwargs):
        finished.append(task_result)

    task_finished.connect(on_finished)
    try:
        stats = drain()
    finally:
        task_finished.disconnect(on_finished)
    done = backend.get_result(result.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.return_value == 3
    assert done.attempts == 3
    assert [e.exception_class_path for e in done.errors] == ["builtins.ConnectionError"] * 2
    assert (stats.retried, stats.succeeded, stats.failed) == (2, 1, 0)
    # task_finished is sent once, when the task really finished.
    assert [r.status for r in finished] == [TaskResultStatus.SUCCESSFUL]


def test_retries_stop_at_max_attempts_and_skip_excluded_exceptions(backend):
    retried = tasks.fails_with.enqueue("key")
    excluded = tasks.fails_with.enqueue("value")
    drain()
    spent = backend.get_result(retried.id)
    assert spent.status == TaskResultStatus.FAILED
    assert spent.attempts == 3
    assert len(spent.errors) == 3
    never = backend.get_result(excluded.id)
    assert never.status == TaskResultStatus.FAILED
    assert never.attempts == 1


def test_an_exception_is_not_retried_by_default(backend):
    result = tasks.fail.enqueue("once")
    assert TaskRecord.objects.get(pk=int(result.id)).max_attempts == 3
    drain()
    assert backend.get_result(result.id).attempts == 1


def test_bad_task_options_are_refused_when_the_task_is_declared():
    def work() -> None: ...

    with pytest.raises(InvalidTaskOptions, match="max_attempts"):
        offload_task(max_attempts=0)(work)
    with pytest.raises(InvalidTaskOptions, match="timeout"):
        offload_task(timeout=-1)(work)
    with pytest.raises(InvalidTaskOptions, match="backoff"):
        offload_task(backoff="sometimes")(work)
    with pytest.raises(InvalidTaskOptions, match="retry_on"):
        offload_task(retry_on=("ValueError",))(work)


@pytest.mark.skipif(
    "kwargs" not in inspect.signature(django_task).parameters,
    reason="Django 6.0's @task takes no backend options (offload.task.task does)",
)
def test_djangos_own_decorator_passes_the_options_through(backend):
    declared = django_task(max_attempts=7, timeout=12)(module_level)
    assert backend.policy_for(declared).max_attempts == 7
    assert backend.timeout_for(declared) == 12


def test_a_cancelled_ready_task_never_runs(backend):
    doomed = tasks.record_run.enqueue("doomed")
    kept = tasks.record_run.enqueue("kept")
    assert backend.cancel(doomed.id) == "cancelled"
    drain()
    assert list(Run.objects.values_list("marker", flat=True)) == ["kept"]
    assert backend.get_result(kept.id).status == TaskResultStatus.SUCCESSFUL


def test_a_running_task_that_checks_its_context_stops_when_cancelled(backend, settings):
    settings.TASKS = {
        **settings.TASKS,
        "default": {
            **settings.TASKS["default"],
            "OPTIONS": {**settings.TASKS["default"]["OPTIONS"], "HEARTBEAT_SECONDS": 0.1},
        },
    }
    from django.tasks import task_backends

    backend = task_backends["default"]
    result = tasks.wait_for_cancel.enqueue(30)
    with running_worker() as running:
        wait_for(lambda: backend.get_result(result.id).status == TaskResultStatus.RUNNING)
        assert backend.cancel(result.id) == "requested"
        wait_for(
            lambda: TaskRecord.objects.get(pk=int(result.id)).status == State.CANCELLED,
            timeout=10,
            what="the task to stop itself",
        )
    # Read once the worker has stopped: it counts an outcome after writing it.
    assert running.worker.stats.cancelled == 1
    errors = backend.get_result(result.id).errors
    assert errors[-1].exception_class_path == "offload.exceptions.TaskCancelled"


def test_a_row_with_unreadable_arguments_fails_alone(backend):
    bad = tasks.add.enqueue(1, 2)
    good = tasks.add.enqueue(3, 4)
    with connection.cursor() as cursor:
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
        cursor.execute(
            f"UPDATE offload_task SET kwargs = %s{cast} WHERE id = %s", ["[1, 2]", int(bad.id)]
        )
    stats = drain()
    assert (stats.succeeded, stats.failed) == (1, 1)
    assert backend.get_result(good.id).return_value == 7
    row = TaskRecord.objects.get(pk=int(bad.id))
    assert row.status == State.FAILED
    assert row.errors[0]["exception_class_path"] == "offload.exceptions.CorruptTask"
