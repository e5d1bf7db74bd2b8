"""``manage.py offload`` as a user runs it: a real process, Django's own options
after the subcommand, and what the worker prints with DEBUG on."""

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
