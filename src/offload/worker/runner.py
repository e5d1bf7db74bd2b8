"""Run one claimed task: resolve it, call it, and hand the outcome to ``record``.

The runner writes nothing itself; ``record`` (the loop's, which goes through the
store with its fencing) is called before ``task_finished`` is sent, so a signal
receiver that calls ``get_result()`` sees the final state. The failure signal is
sent inside the ``except`` block, as Django's own backends do, so receivers can
read ``sys.exc_info()``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.tasks import TaskResult, TaskResultStatus
from django.tasks.base import TaskContext
from django.tasks.signals import task_finished, task_started

from offload.exceptions import OffloadError
from offload.payload import encode
from offload.results import build_result, task_of
from offload.states import State
from offload.store import ClaimedTask

logger = logging.getLogger("offload.worker")


class WorkerInterrupted(BaseException):
    """Raised inside a running task when the worker is told to stop at once.

    A BaseException so that task code's ``except Exception`` does not swallow it.
    """


class ReturnValueNotJSON(OffloadError, TypeError):
    """The task returned something that is not plain JSON."""


@dataclass(frozen=True, slots=True)
class Outcome:
    succeeded: bool
    return_json: str | None
    errors: list[dict[str, Any]]  # the task's whole error history, this attempt's last
    result: TaskResult[..., Any] | None  # None when the task could not even be resolved


def _error(exc: BaseException, claimed: ClaimedTask, worker_id: str) -> dict[str, Any]:
    kind = type(exc)
    return {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "traceback": "".join(traceback.format_exception(exc)),
        "attempt": claimed.attempt,
        "worker_id": worker_id,
        "at": datetime.now(UTC).isoformat(),
    }


Recorder = Callable[["Outcome"], bool]


def run(claimed: ClaimedTask, worker_id: str, record: Recorder) -> Outcome:
    """Run ``claimed`` in this thread, record the outcome, and return it."""
    try:
        task = task_of(claimed)
    except Exception as exc:
        # A row that no longer resolves to a Task fails at once with a clear
        # error; it must never block the tasks behind it.
        logger.error("Task %s cannot run: %s", claimed.id, exc)
        outcome = Outcome(False, None, [*claimed.errors, _error(exc, claimed, worker_id)], None)
        record(outcome)
        return outcome

    def result_with(
        status: str,
        finished_at: datetime | None = None,
        errors: list[dict[str, Any]] | None = None,
        value: Any = None,
    ) -> TaskResult[..., Any]:
        return build_result(
            task,
            task_id=claimed.id,
            status=status,
            enqueued_at=claimed.enqueued_at,
            started_at=claimed.started_at,
            finished_at=finished_at,
            last_attempted_at=claimed.last_attempted_at,
            args=claimed.args,
            kwargs=claimed.kwargs,
            errors=claimed.errors if errors is None else errors,
            worker_ids=claimed.worker_ids,
            return_value=value,
        )

    running = result_with(State.RUNNING)
    task_started.send(type(task.get_backend()), task_result=running)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=running), *claimed.args, **claimed.kwargs)
        else:
            value = task.call(*claimed.args, **claimed.kwargs)
        try:
            return_json = encode(value, "the return value")
        except TypeError as exc:
            raise ReturnValueNotJSON(str(exc)) from exc
    except (WorkerInterrupted, KeyboardInterrupt):
        raise  # the worker is being stopped; this is not the task's failure
    except BaseException as exc:
        errors = [*claimed.errors, _error(exc, claimed, worker_id)]
        finished = result_with(TaskResultStatus.FAILED, datetime.now(UTC), errors)
        outcome = Outcome(False, None, errors, finished)
        if record(outcome):
            task_finished.send(type(task.get_backend()), task_result=finished)
        return outcome
    finished = result_with(TaskResultStatus.SUCCESSFUL, datetime.now(UTC), value=value)
    outcome = Outcome(True, return_json, claimed.errors, finished)
    if record(outcome):
        task_finished.send(type(task.get_backend()), task_result=finished)
    return outcome
