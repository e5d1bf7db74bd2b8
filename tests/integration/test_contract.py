"""Django's task contract to the letter, on SQLite, PostgreSQL and MariaDB: what a
return value that is not JSON records, progress numbers that come back as they
went, and arguments checked against the task's signature at enqueue."""

import io

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.tasks import TaskResultStatus
from django.tasks.exceptions import InvalidTask
from django.test import override_settings

import offload
from offload.exceptions import ArgumentsMismatch, InvalidProgress
from offload.limits import MAX_EXACT_PROGRESS_INT, MAX_RESULT_DEPTH
from offload.models import TaskRecord
from offload.progress import Progress, make_progress
from offload.states import State
from offload.store import TaskStore
from tests.admin_factory import make_task
from tests.app import tasks
from tests.helpers import drain, row_count

IMMEDIATE = {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend", "QUEUES": []}


def _last_error(result_id: str) -> dict[str, object]:
    row = TaskRecord.objects.get(pk=result_id)
    assert row.status == State.FAILED
    assert row.return_value is None
    return dict(row.errors[-1])


# --- A return value that is not JSON -------------------------------------------


def test_a_return_value_that_is_not_json_fails_with_a_type_error_as_in_django():
    with override_settings(TASKS={**settings.TASKS, "immediate": IMMEDIATE}):
        django_result = tasks.return_non_json.using(backend="immediate").enqueue()
    assert django_result.status == TaskResultStatus.FAILED
    assert django_result.errors[-1].exception_class is TypeError

    result = tasks.return_non_json.enqueue()
    drain()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    error = result.errors[-1]
    assert error.exception_class is TypeError
    last_line = error.traceback.strip().splitlines()[-1]
    assert last_line.startswith("TypeError: Unsupported type: the return value is of type set")
    # Not chained to an offload exception: the record reads as Django's does.
    assert "offload.exceptions" not in error.traceback
    assert _last_error(result.id)["exception_class_path"] == "builtins.TypeError"


@pytest.mark.parametrize("kind", ["nul", "surrogate", "huge", "too deep"])
def test_a_json_return_value_no_database_stores_fails_with_a_value_error(kind):
    depth = MAX_RESULT_DEPTH + 2 if kind == "too deep" else 0
    result = tasks.return_unstorable.enqueue("nested" if depth else kind, depth)
    drain()
    error = _last_error(result.id)
    assert error["exception_class_path"] == "builtins.ValueError"
    assert "ValueError: the return value" in str(error["traceback"])
    assert tasks.return_unstorable.get_result(result.id).errors[-1].exception_class is ValueError


# --- Progress numbers ----------------------------------------------------------


def test_progress_reported_as_ints_reads_back_as_ints(backend):
    result = tasks.report_steps.enqueue(4, 0.0)
    drain()
    progress = backend.get_progress(result.id)
    assert progress is not None
    assert (progress.current, progress.total) == (4, 4)
    assert (type(progress.current), type(progress.total)) == (int, int)


def test_a_fraction_reads_back_as_a_float_beside_an_int_total(backend):
    row = make_task(status=State.RUNNING, attempt=1, lease_owner="w")
    assert TaskStore("default").write_progress({(row.pk, 1): Progress(1.5, 10, "")}) == 1
    progress = backend.get_progress(str(row.pk))
    assert progress is not None
    assert (progress.current, progress.total) == (1.5, 10)
    assert (type(progress.current), type(progress.total)) == (float, int)


def test_the_largest_exact_int_round_trips_and_a_larger_one_is_refused(backend):
    row = make_task(status=State.RUNNING, attempt=1, lease_owner="w")
    report = make_progress(MAX_EXACT_PROGRESS_INT - 1, MAX_EXACT_PROGRESS_INT)
    assert type(report.current) is int
    TaskStore("default").write_progress({(row.pk, 1): report})
    progress = backend.get_progress(str(row.pk))
    assert progress is not None
    assert (progress.current, progress.total) == (MAX_EXACT_PROGRESS_INT - 1, 2**53)
    for number in (MAX_EXACT_PROGRESS_INT + 1, 10**400):
        with pytest.raises(InvalidProgress, match="2\\*\\*53"):
            make_progress(number)


# --- Arguments bound to the task's signature at enqueue ------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ([1, 2, 3], {}, "too many positional arguments"),
        ([1], {}, "missing a required argument: 'b'"),
        ([1, 2], {"c": 3}, "got an unexpected keyword argument 'c'"),
        ([1], {"a": 2}, "multiple values for argument 'a'"),
    ],
)
def test_arguments_that_do_not_fit_the_signature_are_refused_at_enqueue(args, kwargs, message):
    with pytest.raises(ArgumentsMismatch, match=message) as raised:
        tasks.add.enqueue(*args, **kwargs)
    assert isinstance(raised.value, InvalidTask)
    assert isinstance(raised.value, TypeError)
    assert "tests.app.tasks.add" in str(raised.value)
    with pytest.raises(InvalidTask, match=message):
        async_to_sync(tasks.add.aenqueue)(*args, **kwargs)
    assert row_count() == 0


def test_arguments_that_fit_are_accepted_context_and_defaults_included():
    tasks.add.enqueue(1, b=2)
    tasks.echo.enqueue(1, 2, 3, any_keyword=4)
    tasks.report_steps.enqueue(3, 0.0)  # takes the context: the caller never passes it
    tasks.report_steps.enqueue(3, 0.0, message="step")
    assert row_count() == 4
    with pytest.raises(ArgumentsMismatch, match="missing a required argument: 'pause'"):
        tasks.report_steps.enqueue(3)
    assert row_count() == 4


def test_enqueue_many_names_the_call_that_does_not_fit_and_writes_nothing():
    with pytest.raises(ArgumentsMismatch, match=r"calls\[1\]: .*too many positional"):
        offload.enqueue_many(tasks.add, [([1, 2], {}), ([1, 2, 3], {}), ([4, 5], {})])
    assert row_count() == 0


# --- A command's options checked by its own parser at enqueue ------------------


def _enqueue(*argv: str) -> str:
    out = io.StringIO()
    call_command("offload", "enqueue", *argv, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["greet", "Ada", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        (["greet"], "the following arguments are required: name"),
        (["greet", "Ada", "--kwargs", '{"bogus": 1}'], "'greet' has no option bogus"),
    ],
)
def test_a_command_the_parser_refuses_is_refused_at_enqueue(argv, message):
    with pytest.raises(CommandError, match=message):
        _enqueue(*argv)
    assert row_count() == 0


def test_a_task_path_whose_arguments_do_not_fit_is_refused_at_the_shell():
    with pytest.raises(CommandError, match="too many positional arguments"):
        _enqueue("tests.app.tasks.add", "--args", "[1, 2, 3]")
    assert row_count() == 0


def test_a_command_the_parser_accepts_is_enqueued():
    _enqueue("greet", "Ada", "--shout")
    _enqueue("greet", "Ada", "--kwargs", '{"shout": true}')
    assert row_count() == 2
