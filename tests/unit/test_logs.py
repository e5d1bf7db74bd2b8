"""The worker's log lines: text for people, JSON with every field for collectors."""

import io
import json
import logging

import pytest

from offload.worker import logs
from offload.worker.protocol import Counts


@pytest.fixture
def offload_logger():
    logger = logging.getLogger("offload")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    # configure() also routes Django's task lines: put them back as well.
    django_tasks = logging.getLogger("django.tasks")
    saved_django = (dict(vars(django_tasks)), django_tasks.handlers[:])
    logger.handlers = []
    yield logger
    logger.handlers, logger.level, logger.propagate = saved
    django_tasks.__dict__.clear()
    django_tasks.__dict__.update(saved_django[0])
    django_tasks.handlers = saved_django[1]
    logging.Logger.manager._clear_cache()  # the levels cached from the test's settings


def _task_line():
    logging.getLogger("offload.worker").info(
        "task id=%s outcome=%s", 7, "SUCCESSFUL",
        extra={"task_id": 7, "task_path": "app.tasks.add", "duration": 0.25},
    )  # fmt: skip


def test_json_lines_carry_the_task_fields(offload_logger):
    stream = io.StringIO()
    logs.configure(1, "json", "p1", stream)
    _task_line()
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "task id=7 outcome=SUCCESSFUL"
    assert (entry["task_id"], entry["task_path"], entry["duration"]) == (7, "app.tasks.add", 0.25)
    assert (entry["level"], entry["logger"], entry["process"]) == ("INFO", "offload.worker", "p1")


def test_text_lines_and_verbosity_zero(offload_logger):
    stream = io.StringIO()
    logs.configure(1, "text", "supervisor", stream)
    _task_line()
    assert "INFO    [supervisor] task id=7 outcome=SUCCESSFUL" in stream.getvalue()
    quiet = io.StringIO()
    logs.configure(0, "text", "supervisor", quiet)
    _task_line()
    assert quiet.getvalue() == ""


def test_a_project_handler_is_left_alone(offload_logger):
    project = logging.StreamHandler(io.StringIO())
    offload_logger.addHandler(project)
    logs.configure(2, "json", "p1")
    assert offload_logger.handlers == [project]
    assert offload_logger.level == logging.DEBUG


def test_stats_lines_round_trip():
    assert Counts.parse(Counts(5, 1, 2, 0, 3, 1).line().strip()) == Counts(5, 1, 2, 0, 3, 1)
    assert Counts.parse(b"garbage") is None
    assert Counts.parse(b"stats 1 2 x 4") is None
    assert Counts(1, 2, 3, 4) + Counts(10, 20, 30, 40) == Counts(11, 22, 33, 44)


def test_verbosity_three_shows_the_sql(offload_logger):
    sql = logging.getLogger("django.db.backends")
    saved = (sql.handlers[:], sql.level, sql.propagate)
    try:
        stream = io.StringIO()
        logs.configure(3, "text", "p1", stream)
        sql.debug("(0.001) SELECT 1; args=()")
        assert "DEBUG   [p1] (0.001) SELECT 1" in stream.getvalue()
    finally:
        sql.handlers, sql.level, sql.propagate = saved


@pytest.fixture
def django_tasks_logger():
    logger = logging.getLogger("django.tasks")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    # As a project that never configured it, even after an earlier worker in
    # this test process routed it (configure() marks the logger it routes).
    routed = logger.__dict__.pop("offload_routed", None)
    logger.handlers, logger.propagate = [], True
    logger.setLevel(logging.NOTSET)  # setLevel, not .level: it clears the cached levels
    yield logger
    logger.handlers, logger.propagate = saved[0], saved[2]
    logger.setLevel(saved[1])
    logger.__dict__.pop("offload_routed", None)
    if routed is not None:
        logger.offload_routed = routed  # type: ignore[attr-defined]


def test_verbosity_zero_stops_djangos_task_records_too(offload_logger, django_tasks_logger):
    """Django logs each task's start and finish at INFO; a worker asked for
    warnings only must not build those records (a quarter of a tiny task)."""
    logs.configure(2, "text", "p1", io.StringIO())
    assert django_tasks_logger.isEnabledFor(logging.INFO)
    logs.configure(1, "text", "p1", io.StringIO())
    assert not django_tasks_logger.isEnabledFor(logging.INFO)  # the worker's own line says it
    assert django_tasks_logger.isEnabledFor(logging.ERROR)  # a failure and its traceback
    logs.configure(0, "text", "p1", io.StringIO())
    assert not django_tasks_logger.isEnabledFor(logging.INFO)
    assert not django_tasks_logger.isEnabledFor(logging.CRITICAL)


def _django_task_lines() -> None:
    django_tasks = logging.getLogger("django.tasks")
    django_tasks.info("Task id=%s path=%s state=%s", 7, "app.tasks.add", "RUNNING")
    try:
        raise ValueError("boom")
    except ValueError:
        django_tasks.error("Task id=%s state=%s", 8, "FAILED", exc_info=True)


def test_djangos_task_lines_go_out_once_in_the_workers_format(offload_logger, django_tasks_logger):
    django = logging.getLogger("django")
    printed_by_django = io.StringIO()
    django.addHandler(handler := logging.StreamHandler(printed_by_django))
    try:
        stream = io.StringIO()
        logs.configure(1, "json", "p1", stream)
        _django_task_lines()
        quiet = io.StringIO()
        logs.configure(0, "json", "p1", quiet)
        _django_task_lines()
    finally:
        django.removeHandler(handler)
    assert printed_by_django.getvalue() == ""  # not a second time, in plain text
    [entry] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert (entry["logger"], entry["level"], entry["process"]) == ("django.tasks", "ERROR", "p1")
    assert "ValueError: boom" in entry["exception"]
    assert quiet.getvalue() == ""


def test_the_banner_is_one_line_of_fields():
    message, fields = logs.banner_fields(
        "offload 1.0 worker w (pid 1)\n  backend   default -> SQLite\n  queues    all\n"
    )
    assert message == "offload 1.0 worker w (pid 1)"
    assert fields == {"backend": "default -> SQLite", "queues": "all"}


def test_a_project_level_for_djangos_task_lines_is_kept(offload_logger, django_tasks_logger):
    django_tasks_logger.setLevel(logging.DEBUG)
    logs.configure(0, "text", "p1", io.StringIO())
    assert django_tasks_logger.level == logging.DEBUG
