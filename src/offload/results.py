"""Rebuilding Django ``Task`` and ``TaskResult`` objects from stored rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from django.tasks import Task, TaskResult
from django.tasks.base import TaskError
from django.utils.module_loading import import_string

from offload.exceptions import TaskNotImportable
from offload.states import to_django_status


def resolve_task(path: str) -> Task[..., Any]:
    """Import ``path`` and return it only if it is a ``django.tasks.Task``.

    Stored rows name code by path; resolving to anything but a registered Task
    (a plain function, a class) would let a row run arbitrary callables.
    """
    try:
        found = import_string(path)
    except ImportError as exc:
        raise TaskNotImportable(f"Task path {path!r} does not import: {exc}") from exc
    if not isinstance(found, Task):
        raise TaskNotImportable(
            f"{path!r} is a {type(found).__name__}, not a django.tasks Task "
            "(decorate it with @task)."
        )
    return found


def bind_task(task: Task[..., Any], *, priority: int, queue_name: str, run_after: datetime | None,
              backend: str) -> Task[..., Any]:  # fmt: skip
    """Return ``task`` with the options it was enqueued with."""
    if (task.priority, task.queue_name, task.run_after, task.backend) == (
        priority, queue_name, run_after, backend,
    ):  # fmt: skip
        return task
    return dataclasses.replace(
        task, priority=priority, queue_name=queue_name, run_after=run_after, backend=backend
    )


class StoredTask(Protocol):
    """What a stored row says about its task (a TaskRecord or a ClaimedTask)."""

    @property
    def task_path(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def queue_name(self) -> str: ...
    @property
    def run_after(self) -> datetime | None: ...
    @property
    def backend(self) -> str: ...


def task_of(stored: StoredTask) -> Task[..., Any]:
    """The registered Task a stored row names, with the options it was enqueued with."""
    return bind_task(
        resolve_task(stored.task_path),
        priority=stored.priority,
        queue_name=stored.queue_name,
        run_after=stored.run_after,
        backend=stored.backend,
    )


def to_errors(stored: Sequence[Mapping[str, Any]]) -> list[TaskError]:
    return [
        TaskError(exception_class_path=e["exception_class_path"], traceback=e["traceback"])
        for e in stored
    ]


def build_result[**P, R](
    task: Task[P, R],
    *,
    task_id: int,
    status: str,
    enqueued_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None,
    last_attempted_at: datetime | None,
    args: list[Any],
    kwargs: dict[str, Any],
    errors: Sequence[Mapping[str, Any]],
    worker_ids: list[str],
    return_value: Any = None,
) -> TaskResult[P, R]:
    result: TaskResult[P, R] = TaskResult(
        task=task,
        id=str(task_id),
        status=to_django_status(status),
        enqueued_at=enqueued_at,
        started_at=started_at,
        finished_at=finished_at,
        last_attempted_at=last_attempted_at,
        args=args,
        kwargs=kwargs,
        backend=task.backend,
        errors=to_errors(errors),
        worker_ids=list(worker_ids),
    )
    # The return value is not an init field of Django's TaskResult; this is the
    # one place offload sets it.
    object.__setattr__(result, "_return_value", return_value)
    return result


def finish_result(result: TaskResult[..., Any], status: str, finished_at: datetime,
                  return_value: Any = None) -> None:  # fmt: skip
    """Mark ``result`` finished in place, as Django's own backends do with theirs."""
    object.__setattr__(result, "status", to_django_status(status))
    object.__setattr__(result, "finished_at", finished_at)
    object.__setattr__(result, "_return_value", return_value)
