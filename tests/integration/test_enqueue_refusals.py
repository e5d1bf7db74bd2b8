"""Every input a database would refuse, or store differently from another, is refused
before anything is written: through ``enqueue``, ``aenqueue``, ``enqueue_many`` and
``manage.py offload enqueue``, with offload's own error, on every database, leaving
the caller's transaction usable (PostgreSQL aborts a transaction whose statement failed).
"""

import io
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.tasks import Task
from django.tasks.exceptions import InvalidTask
from django.tasks.signals import task_started

import offload
from offload.exceptions import (
    ArgumentsTooDeep,
    InvalidArguments,
    InvalidTaskOptions,
    UnstorableArguments,
)
from offload.limits import MAX_ARGUMENT_DEPTH, MAX_RESULT_DEPTH
from offload.models import TaskRecord
from tests.app import tasks
from tests.helpers import drain, override_options, row_count


def nested(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


# (name, args, kwargs, the error expected)
BAD_ARGUMENTS = [
    ("too deep", [nested(MAX_ARGUMENT_DEPTH + 1)], {}, ArgumentsTooDeep),
    ("990 levels", [], {"x": nested(990)}, ArgumentsTooDeep),
    ("dict too deep", [], {"x": json.loads('{"a":' * 31 + "1" + "}" * 31)}, ArgumentsTooDeep),
    ("NUL in a string", ["a\x00b"], {}, UnstorableArguments),
    ("NUL in a nested string", [{"a": ["ok", "\x00"]}], {}, UnstorableArguments),
    ("NUL in a key", [{"k\x00": 1}], {}, UnstorableArguments),
    ("NUL in a kwarg name", [], {"k\x00": 1}, UnstorableArguments),
    ("lone surrogate", ["\ud800"], {}, UnstorableArguments),
    ("lone surrogate nested", [], {"x": {"y": "ok \udfff"}}, UnstorableArguments),
    ("huge int", [10**5000], {}, UnstorableArguments),
    ("huge int nested", [[1, -(10**5000)]], {}, UnstorableArguments),
    ("infinity", [float("inf")], {}, InvalidArguments),
    ("nan nested", [], {"x": [float("nan")]}, InvalidArguments),
]


def via_enqueue(args: list[object], kwargs: dict[str, object], task: Task = tasks.echo) -> None:
    task.enqueue(*args, **kwargs)


def via_aenqueue(args: list[object], kwargs: dict[str, object], task: Task = tasks.echo) -> None:
    # Through async_to_sync, as a view would: the enqueue runs on this
    # thread's connection, in the caller's transaction.
    async_to_sync(task.aenqueue)(*args, **kwargs)


def via_enqueue_many(
    args: list[object], kwargs: dict[str, object], task: Task = tasks.echo
) -> None:
    # A good call first, when the task takes it: it must not be written either.
    lead = [([1], {})] if task is tasks.echo else []
    offload.enqueue_many(task, [*lead, (args, kwargs)])


ENTRY_POINTS: dict[str, Callable[..., None]] = {
    "enqueue": via_enqueue,
    "aenqueue": via_aenqueue,
    "enqueue_many": via_enqueue_many,
}


def assert_transaction_usable() -> None:
    """A statement still runs: on PostgreSQL a failed INSERT would have aborted it."""
    assert TaskRecord.objects.filter(task_path="nothing").count() == 0


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(("name", "args", "kwargs", "error"), BAD_ARGUMENTS)
def test_bad_arguments_are_refused_before_anything_is_written(entry, name, args, kwargs, error):
    tasks.noop.enqueue()
    before = row_count()
    with transaction.atomic():
        tasks.noop.enqueue()
        with pytest.raises(error) as caught:
            ENTRY_POINTS[entry](args, kwargs)
        assert isinstance(caught.value, InvalidTask)
        assert_transaction_usable()
        tasks.noop.enqueue()  # the caller goes on in the same transaction
    assert row_count() == before + 2


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_deepest_arguments_allowed_are_stored_and_run_on_every_database(entry):
    deepest = nested(MAX_ARGUMENT_DEPTH, "leaf")
    # Returned as it came: the return value is no deeper than the arguments
    # (MariaDB would refuse a deeper one).
    ENTRY_POINTS[entry]([0, deepest], {}, tasks.sleep_then_return)
    ENTRY_POINTS[entry]([], {"seconds": 0, "value": deepest}, tasks.sleep_then_return)
    first, second = TaskRecord.objects.order_by("-id")[:2][::-1]
    assert (first.args, first.kwargs) == ([0, deepest], {})
    assert (second.args, second.kwargs) == ([], {"seconds": 0, "value": deepest})
    drain()
    for row in (first, second):
        row.refresh_from_db()
        assert (row.status, row.return_value) == ("SUCCESSFUL", deepest)


def test_a_lower_max_argument_depth_is_the_limit():
    with override_options(MAX_ARGUMENT_DEPTH=3):
        tasks.echo.enqueue(nested(3))
        with pytest.raises(ArgumentsTooDeep, match=r"args\[0\]\[0\]\[0\]\[0\] nests .* 3 levels"):
            tasks.echo.enqueue(nested(4))
        with pytest.raises(ArgumentsTooDeep, match=r"calls\[1\]: "):
            offload.enqueue_many(tasks.echo, [([1], {}), ([nested(4)], {})])
    assert row_count() == 1


@pytest.mark.parametrize("priority", [True, False, "5", 1.5, float("nan"), float("inf")])
def test_priorities_that_are_not_whole_numbers_are_refused(priority):
    with pytest.raises(InvalidTask, match="priority"):
        tasks.noop.using(priority=priority)
    with pytest.raises(InvalidTask, match="priority"):
        Task(  # every field given: Django 6.0 has no defaults for them
            func=tasks.noop.func,
            priority=priority,  # type: ignore[arg-type]
            backend="default",
            queue_name="default",
            run_after=None,
        )
    assert row_count() == 0


def test_a_bool_priority_is_offloads_own_error():
    with pytest.raises(InvalidTaskOptions, match="got bool True"):
        tasks.noop.using(priority=True)


def test_a_run_after_out_of_range_in_utc_is_refused():
    last = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(InvalidTaskOptions, match="out of range once converted to UTC"):
        tasks.noop.using(run_after=last)
    with pytest.raises(InvalidTaskOptions, match="run_after must be a datetime"):
        tasks.noop.using(run_after="tomorrow")  # type: ignore[arg-type]
    assert row_count() == 0


def test_a_failure_building_the_result_writes_nothing():
    # The TaskResult is built (Django normalises its arguments, recursively)
    # before the INSERT: with too little stack left for that, nothing is stored.
    frames = 0
    frame = sys._getframe()
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    deep = nested(MAX_ARGUMENT_DEPTH)
    tasks.echo.enqueue(1)  # connection opened and statement prepared at a normal depth
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(frames + 30)
    try:
        with pytest.raises(RecursionError):
            tasks.echo.enqueue(deep)
    finally:
        sys.setrecursionlimit(limit)
    assert row_count() == 1


# -- manage.py offload enqueue -------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--args", json.dumps([nested(MAX_ARGUMENT_DEPTH + 1)])], "nests lists and dicts"),
        (["--args", "[" * 100_000 + "]" * 100_000], "--args: cannot be read"),
        (["--args", '["a\\u0000b"]'], "NUL character"),
        (["--kwargs", '{"x": "\\ud800"}'], "lone surrogate"),
        (["--args", "[" + "9" * 5000 + "]"], "--args: cannot be read"),
        (["--args", "[1e999]"], "JSON cannot represent"),
        (["--in", "1000000000d"], "--in '1000000000d': too far in the future"),
        (["--in", "999999999d"], "--in '999999999d': too far in the future"),
        (["--at", "9999-12-31T23:00:00-05:00"], "out of range once converted to UTC"),
        (["--backend", "nosuch"], "--backend 'nosuch': no such backend in TASKS"),
    ],
)
def test_the_cli_refuses_bad_input_with_a_command_error(argv, message):
    with transaction.atomic():
        with pytest.raises(CommandError, match=message):
            call_command("offload", "enqueue", "tests.app.tasks.echo", *argv, stdout=io.StringIO())
        assert_transaction_usable()
    assert row_count() == 0


# -- a task whose start fails -----------------------------------------------------


def test_a_task_whose_start_fails_ends_failed_with_an_error():
    def refuse(sender: object, **kwargs: object) -> None:
        raise RuntimeError("a task_started receiver failed")

    result = tasks.add.enqueue(1, 2)
    task_started.connect(refuse)
    try:
        drain()
    finally:
        task_started.disconnect(refuse)
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == "FAILED"
    assert row.lease_owner is None
    assert row.errors[-1]["exception_class_path"] == "builtins.RuntimeError"
    assert "a task_started receiver failed" in row.errors[-1]["traceback"]


def heard(sender: object, **kwargs: object) -> None:
    pass


def test_a_stored_row_too_deep_to_rebuild_ends_failed(backend):
    if connection.vendor == "mysql":
        pytest.skip("MariaDB's JSON check refuses such a row")
    from offload.store import NewTask

    deep = "[" * 990 + "]" * 990  # written by an older version, or by hand
    row = NewTask(
        task_path="tests.app.tasks.echo", backend="default", queue_name="default",
        priority=0, run_after=None, args_json=f"[{deep}]", kwargs_json="{}",
    )  # fmt: skip
    task_id, _ = backend.store.enqueue(row)
    # The attempt's TaskResult (where Django rebuilds the arguments,
    # recursively) is built when someone hears task_started, as a worker
    # logging at INFO does. Whether 990 levels exhaust the stack depends on the
    # thread's depth: a lower limit makes it certain.
    task_started.connect(heard)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(600)
    try:
        drain()
    finally:
        sys.setrecursionlimit(limit)
        task_started.disconnect(heard)
    row = TaskRecord.objects.values("status", "errors").get(pk=task_id)
    assert row["status"] == "FAILED"
    assert row["errors"][-1]["exception_class_path"] == "builtins.RecursionError"


def test_an_async_task_whose_start_fails_ends_failed():
    def refuse(sender: object, **kwargs: object) -> None:
        raise RuntimeError("a task_started receiver failed")

    result = tasks.async_add.enqueue(1, 2)
    task_started.connect(refuse)
    try:
        drain()
    finally:
        task_started.disconnect(refuse)
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.status, row.errors[-1]["exception_class_path"]) == (
        "FAILED",
        "builtins.RuntimeError",
    )


@pytest.mark.parametrize("kind", ["nul", "surrogate", "huge", "too deep"])
def test_a_return_value_no_database_stores_fails_the_task_instead_of_its_write(kind):
    # MAX_RESULT_DEPTH levels below the outermost list: one more is too deep.
    depth = MAX_RESULT_DEPTH + 2 if kind == "too deep" else 0
    result = tasks.return_unstorable.enqueue("nested" if depth else kind, depth)
    drain()
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == "FAILED"
    assert row.return_value is None
    assert "the return value" in row.errors[-1]["traceback"]


def test_the_deepest_return_value_allowed_is_stored_on_every_database():
    result = tasks.return_unstorable.enqueue("nested", MAX_RESULT_DEPTH + 1)
    drain()
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == "SUCCESSFUL"
    assert row.return_value == nested(MAX_RESULT_DEPTH + 1, "leaf")
