"""Management commands run as tasks by a real worker: output and exit status are stored."""

from offload.command_tasks import run_command
from offload.models import TaskRecord
from tests.helpers import drain


def run(*args, **options) -> TaskRecord:
    result = run_command.enqueue(*args, **options)
    drain()
    return TaskRecord.objects.get(pk=result.id)


def test_a_command_run_as_a_task_keeps_its_output():
    record = run("greet", "Ada")
    assert record.status == "SUCCESSFUL"
    assert record.return_value == {
        "command": "greet", "exit_status": 0, "stdout": "Hello, Ada!\n", "stderr": "greeted\n"
    }  # fmt: skip


def test_options_are_passed_as_keyword_arguments():
    assert run("greet", "Ada", shout=True).return_value["stdout"] == "HELLO, ADA!\n"


def test_a_command_error_ends_failed_with_its_output():
    record = run("broken")
    assert record.status == "FAILED"
    [error] = record.errors
    assert error["exception_class_path"] == "offload.exceptions.CommandFailed"
    assert "CommandError: the work could not be done" in error["traceback"]
    assert "exit status 1" in error["traceback"]
    assert "started the work" in error["traceback"]


def test_a_non_zero_exit_ends_failed_with_its_status_and_output():
    record = run("broken", exit=3)
    assert record.status == "FAILED"
    traceback = record.errors[0]["traceback"]
    assert "exited with status 3" in traceback
    assert "exit status 3" in traceback
    assert "started the work" in traceback


def test_a_zero_exit_is_a_success():
    record = run("broken", exit=0)
    assert record.status == "SUCCESSFUL"
    assert record.return_value["stdout"] == "started the work\n"


def test_an_unknown_command_ends_failed():
    record = run("no_such_command")
    assert record.status == "FAILED"
    assert "Unknown command: 'no_such_command'" in record.errors[0]["traceback"]
