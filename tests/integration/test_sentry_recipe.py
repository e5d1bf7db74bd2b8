"""The Sentry recipe of docs/operations.md, run as written against a worker
(in this process) and a Sentry client whose transport keeps events in memory."""

import logging
import re
import types
from pathlib import Path

import pytest
import sentry_sdk
from django.tasks.signals import task_finished
from sentry_sdk.integrations import logging as sentry_logging
from sentry_sdk.transport import Transport

from tests.app import tasks
from tests.helpers import drain

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
UID = "sentry_tasks.report_failed_task"


def recipe() -> str:
    found = re.search(r"```python\n(# sentry_tasks\.py.*?)```", OPERATIONS.read_text(), re.S)
    assert found, "the Sentry recipe is no longer in docs/operations.md"
    return found.group(1)


class Captured(Transport):
    def __init__(self):
        super().__init__()
        self.events = []

    def capture_envelope(self, envelope):
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry():
    transport = Captured()
    sentry_sdk.init(
        dsn="https://key@sentry.invalid/1",
        transport=transport,
        # No integration patches Django for the rest of the test session; the
        # logging one stays, to show the recipe's event is the only one.
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[sentry_logging.LoggingIntegration(event_level=logging.ERROR)],
    )
    module = types.ModuleType("sentry_tasks")
    exec(compile(recipe(), str(OPERATIONS), "exec"), module.__dict__)
    yield transport
    task_finished.disconnect(dispatch_uid=UID)
    sentry_logging._IGNORED_LOGGERS.discard("django.tasks")
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: a client that sends nothing


def test_a_failed_task_is_reported_once_with_its_tags_and_context(sentry, backend):
    result = tasks.fail.enqueue("boom")
    tasks.add.enqueue(1, 2)  # a success: not reported
    drain()
    (event,) = sentry.events
    (exception,) = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("ValueError", "boom")
    assert event["tags"] == {
        "task.path": "tests.app.tasks.fail",
        "task.queue": "default",
        "task.backend": "default",
        "task.id": result.id,
        "task.attempt": "1",
    }
    context = event["contexts"]["task"]
    assert context["errors"] == ["builtins.ValueError"]
    assert len(context["worker_ids"]) == 1
    assert context["finished_at"]


def test_a_retried_attempt_is_not_reported_but_the_last_failure_is(sentry, backend):
    result = tasks.fails_with.enqueue("key")  # KeyError, retried until its attempts are spent
    drain()
    (event,) = sentry.events
    assert event["tags"]["task.attempt"] == "3"
    assert event["contexts"]["task"]["errors"] == ["builtins.KeyError"] * 3
    assert backend.get_result(result.id).status == "FAILED"
