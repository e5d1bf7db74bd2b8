"""``manage.py offload enqueue``: tasks and commands from the shell, on every database."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from offload.models import TaskRecord
from tests.helpers import drain


def enqueue(*argv: str) -> tuple[str, TaskRecord]:
    out = io.StringIO()
    call_command("offload", "enqueue", *argv, stdout=out)
    text = out.getvalue()
    return text, TaskRecord.objects.get(pk=int(text.split()[-1]))


def test_a_task_path_with_json_arguments():
    text, record = enqueue("tests.app.tasks.add", "--args", "[2, 3]")
    assert text.startswith("Enqueued tests.app.tasks.add on queue 'default'")
    assert (record.task_path, record.args, record.kwargs) == ("tests.app.tasks.add", [2, 3], {})
    drain()
    record.refresh_from_db()
    assert record.return_value == 5


def test_kwargs_queue_and_priority():
    _, record = enqueue(
        "tests.app.tasks.echo", "--kwargs", '{"a": 1}', "--queue", "reports", "--priority", "7"
    )
    assert (record.kwargs, record.queue_name, record.priority) == ({"a": 1}, "reports", 7)


def test_a_management_command_with_its_arguments():
    _, record = enqueue("greet", "Ada", "--kwargs", '{"shout": true}')
    assert record.task_path == "offload.command_tasks.run_command"
    assert record.args == ["greet", "Ada"]
    drain()
    record.refresh_from_db()
    assert record.return_value["stdout"] == "HELLO, ADA!\n"


def test_in_and_at_defer_the_task():
    before = timezone.now()
    _, record = enqueue("tests.app.tasks.noop", "--in", "2h")
    assert timedelta(hours=2) <= record.run_after - before < timedelta(hours=2, minutes=1)
    _, record = enqueue("tests.app.tasks.noop", "--at", "2031-05-01T10:00:00+00:00")
    assert record.run_after.isoformat() == "2031-05-01T10:00:00+00:00"
    assert drain().processed == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tests.app.tasks.missing"], "cannot be imported"),
        (["tests.app.tasks.not_a_task"], "is not a django.tasks Task"),
        (["gret"], "neither a task path .* Did you mean 'greet'"),
        (["tests.app.tasks.add", "1", "2"], "positional arguments are for management commands"),
        (["tests.app.tasks.add", "--args", "{"], "--args: not valid JSON"),
        (["tests.app.tasks.add", "--kwargs", "[]"], "--kwargs must be a JSON object"),
        (["tests.app.tasks.noop", "--queue", "nope"], "nope"),
        (["tests.app.tasks.noop", "--priority", "500"], "priority"),
        (["tests.app.tasks.noop", "--in", "soon"], "expected a delay"),
        (["tests.app.tasks.noop", "--at", "x", "--in", "5m"], "not both"),
        (["tests.app.tasks.echo", "--args", '[{"a": [1, {"b": 1.5j}]}]'], "not valid JSON"),
    ],
)
def test_bad_input_is_a_clear_command_error(argv, message):
    with pytest.raises(CommandError, match=message):
        call_command("offload", "enqueue", *argv, stdout=io.StringIO())
    assert TaskRecord.objects.count() == 0


def test_flags_may_come_before_the_name_and_after_a_double_dash_go_to_the_command():
    _, record = enqueue("--queue", "reports", "tests.app.tasks.noop")
    assert record.queue_name == "reports"
    _, record = enqueue("greet", "--", "--shout", "Ada")
    assert record.args == ["greet", "--shout", "Ada"]
    drain()
    record.refresh_from_db()
    assert record.return_value["stdout"] == "HELLO, ADA!\n"


def test_a_bad_flag_value_after_the_name_is_a_command_error():
    with pytest.raises(CommandError, match="--priority"):
        call_command("offload", "enqueue", "tests.app.tasks.noop", "--priority", "high")


def test_enqueueing_a_command_names_the_command():
    text, _ = enqueue("greet", "Ada", "--queue", "reports")
    assert text.startswith(
        "Enqueued manage.py greet Ada (through offload.command_tasks.run_command) "
        "on queue 'reports': "
    ), text
