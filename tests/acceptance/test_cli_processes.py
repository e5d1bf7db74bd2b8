"""``manage.py offload`` as a user runs it: a real process, Django's own options
after the subcommand, and what the worker prints with DEBUG on."""

import json

import pytest
from django.tasks import TaskResultStatus

from tests.app import tasks

OFFLOAD = ("-m", "django", "offload")
DEBUG_SETTINGS = "tests.settings_debug"


def _run(start_process, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = start_process(*OFFLOAD, *args, env=env)
    output, _ = proc.communicate(timeout=120)
    return proc.returncode, output


@pytest.mark.parametrize(
    "extra",
    [
        ("--traceback",),
        ("--no-color",),
        ("--force-color",),
        ("--skip-checks",),
        ("--pythonpath", "."),
        ("--verbosity", "0"),
    ],
)
def test_djangos_options_are_accepted_after_the_worker_subcommand(backend, start_process, extra):
    result = tasks.add.enqueue(2, 3)
    code, output = _run(start_process, "worker", "--burst", "--processes", "1", *extra)
    assert code == 0, output
    assert backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_settings_after_the_subcommand_chooses_the_settings(backend, start_process):
    result = tasks.add.enqueue(2, 3)
    wrong = {"DJANGO_SETTINGS_MODULE": "no_such_settings_module"}
    code, output = _run(
        start_process, "worker", "--burst", "--processes", "1", "--settings", "tests.settings",
        env=wrong,
    )  # fmt: skip
    assert code == 0, output
    assert backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL
    code, output = _run(start_process, "schedules", "--settings", "tests.settings", env=wrong)
    assert code == 0, output
    code, output = _run(
        start_process, "enqueue", "--settings", "tests.settings", "-v", "0",
        "tests.app.tasks.noop", env=wrong,
    )  # fmt: skip
    assert code == 0, output


def test_traceback_after_the_subcommand_shows_the_traceback(start_process):
    code, output = _run(start_process, "enqueue", "--traceback", "no.such.task")
    assert code != 0
    assert "Traceback (most recent call last)" in output
    code, output = _run(start_process, "enqueue", "no.such.task")
    assert code != 0
    assert "Traceback" not in output


def _worker_with_debug(start_process, *flags: str) -> str:
    code, output = _run(
        start_process, "worker", "--burst", "--processes", "1", "--settings", DEBUG_SETTINGS,
        *flags,
    )  # fmt: skip
    assert code == 0, output
    return output


def test_with_debug_and_json_every_line_is_json_and_djangos_lines_are_not_repeated(
    backend, start_process
):
    tasks.add.enqueue(1, 2)
    tasks.fail.enqueue("boom")
    output = _worker_with_debug(start_process, "--log-format", "json")
    entries = [json.loads(line) for line in output.splitlines()]  # fails on a plain line
    banner, *_, summary = entries
    assert banner["message"].startswith("offload ")
    assert banner["worker"]["queues"] == "all"
    assert summary["summary"]["processed"] == 2
    by_logger = [(e["logger"], e["level"]) for e in entries if e["logger"] == "django.tasks"]
    assert by_logger == [("django.tasks", "ERROR")]  # the failure, once, with its traceback
    assert sum("ValueError: boom" in e.get("exception", "") for e in entries) == 1
    task_lines = [e for e in entries if "outcome" in e]
    assert sorted(e["outcome"] for e in task_lines) == ["FAILED", "SUCCESSFUL"]


def test_with_debug_verbosity_zero_prints_nothing_for_tasks(backend, start_process):
    for flags in (("-v", "0"), ("-v", "0", "--log-format", "json")):
        done = tasks.add.enqueue(1, 2)
        failed = tasks.fail.enqueue("boom")
        output = _worker_with_debug(start_process, *flags)
        assert output == "", output
        assert backend.get_result(done.id).status == TaskResultStatus.SUCCESSFUL
        assert backend.get_result(failed.id).status == TaskResultStatus.FAILED
