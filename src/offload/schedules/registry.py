"""Schedules declared in code, next to their task::

    from django.tasks import task
    from offload.schedules import schedule


    @schedule(cron="0 3 * * *", kwargs={"full": True})
    @task
    def build_report(full: bool = False) -> None: ...

The decorator only records the schedule (nothing is read from settings at
import); it is validated by ``manage.py check`` and synced to the ``Schedule``
table when a worker starts. Declare schedules in an app's ``tasks`` module (or
any module imported at start-up): the sync imports every app's ``tasks``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.tasks import Task

_T = TypeVar("_T", bound="Task[..., Any]")

# backend alias -> schedule name -> the raw definition, as in OPTIONS["SCHEDULES"].
_REGISTRY: dict[str, dict[str, dict[str, Any]]] = {}


def schedule(
    *,
    cron: str | None = None,
    interval: int | None = None,
    name: str | None = None,
    args: list[Any] | tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    timezone: str | None = None,
    catch_up: str | None = None,
    skip_if_running: bool = False,
    backend: str = "default",
) -> Callable[[_T], _T]:
    """Fire the decorated ``django.tasks`` Task on ``cron`` or every ``interval`` seconds.

    ``name`` defaults to the task's import path. Other arguments are those of a
    schedule in ``OPTIONS["SCHEDULES"]`` (see docs/schedules.md).
    """

    def register(task: _T) -> _T:
        if not isinstance(task, Task):
            raise TypeError(
                "@schedule goes above @task: it needs a django.tasks Task, "
                f"got {type(task).__name__}"
            )
        raw: dict[str, Any] = {"task": task.module_path, "args": list(args)}
        optional = {
            "cron": cron, "interval": interval, "kwargs": kwargs, "queue": queue,
            "priority": priority, "timezone": timezone, "catch_up": catch_up,
        }  # fmt: skip
        raw.update({key: value for key, value in optional.items() if value is not None})
        if skip_if_running:
            raw["skip_if_running"] = True
        _REGISTRY.setdefault(backend, {})[name or task.module_path] = raw
        return task

    return register


def registered(backend: str) -> dict[str, dict[str, Any]]:
    """The schedules declared in code for ``backend``, by name."""
    return dict(_REGISTRY.get(backend, {}))


def unregister(backend: str, name: str) -> None:
    """Forget a declared schedule (for tests)."""
    _REGISTRY.get(backend, {}).pop(name, None)
