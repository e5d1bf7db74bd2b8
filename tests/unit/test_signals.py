"""Task signals: a send is skipped only when nothing would hear it."""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.tasks import TaskResult
from django.tasks.signals import task_enqueued, task_finished, task_started

from offload.results import build_result
from offload.signals import heard, send_task_signal
from offload.states import State
from tests.app import tasks


def _result(status: str) -> TaskResult:
    now = datetime.now(UTC)
    return build_result(
        tasks.noop, task_id=1, status=status, enqueued_at=now, started_at=now,
        finished_at=None, last_attempted_at=now, args=[], kwargs={}, errors=[], worker_ids=[],
    )  # fmt: skip


@pytest.fixture
def django_tasks_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("django.tasks")
    saved = logger.level
    yield logger
    logger.setLevel(saved)


def test_only_djangos_log_line_at_a_dropped_level_is_skipped(django_tasks_logger):
    django_tasks_logger.setLevel(logging.WARNING)
    assert not heard(task_started)
    assert not heard(task_finished)
    assert not heard(task_enqueued)
    # A failure's line is an ERROR, which WARNING keeps.
    assert heard(task_finished, failed=True)
    django_tasks_logger.setLevel(logging.INFO)
    assert heard(task_started)
    assert not heard(task_enqueued)  # Django logs it at DEBUG


def test_a_logger_that_keeps_the_line_gets_it(django_tasks_logger, caplog):
    caplog.set_level(logging.INFO, logger="django.tasks")
    send_task_signal(task_started, object, _result(State.RUNNING))
    assert [r.getMessage() for r in caplog.records] == [
        "Task id=1 path=tests.app.tasks.noop state=RUNNING"
    ]


def test_any_other_receiver_gets_every_send(django_tasks_logger):
    django_tasks_logger.setLevel(logging.WARNING)
    got = []

    def receiver(sender, task_result, **kwargs):
        got.append(task_result.status)

    task_started.connect(receiver)
    try:
        send_task_signal(task_started, object, _result(State.RUNNING))
    finally:
        task_started.disconnect(receiver)
    assert got == ["RUNNING"]
    # Disconnected again: back to Django's receiver alone, and skipped.
    assert not heard(task_started)
