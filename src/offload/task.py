"""``OffloadTask``: Django's ``Task`` with a retry policy and a time limit.

On Django 6.1, ``django.tasks.task`` passes extra keyword arguments to the
backend's ``task_class``, so with offload as the backend::

    @task(max_attempts=5, retry_on=(ConnectionError,), timeout=60)
    def sync_inventory(): ...

works unchanged. ``offload.task.task`` takes the same arguments on Django 6.0
and 6.1 alike. Options left as None take the backend's ``OPTIONS["RETRY"]`` and
``OPTIONS["TIMEOUT"]`` when the task is enqueued.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME, Task, task_backends
from django.tasks.base import DEFAULT_TASK_PRIORITY

from offload.exceptions import InvalidTaskOptions
from offload.retries import RetryPolicy, check_policy_values

ExceptionClasses = type[BaseException] | Sequence[type[BaseException]]


@dataclass(frozen=True, slots=True, kw_only=True)
class OffloadTask(Task):  # type: ignore[type-arg]
    # Attempts in all, the first included; None: OPTIONS["RETRY"]["MAX_ATTEMPTS"].
    max_attempts: int | None = None
    # Exceptions that earn another attempt, and ones that never do (None: the
    # OPTIONS defaults). A crash, a kill or a timeout is retried regardless.
    retry_on: ExceptionClasses | None = None
    dont_retry_on: ExceptionClasses | None = None
    backoff: str | None = None  # "exponential" (with jitter) or "fixed"
    retry_delay: float | None = None  # seconds before the first retry
    # Seconds one attempt may run before its process is killed; None: OPTIONS["TIMEOUT"].
    timeout: float | None = None

    def __post_init__(self) -> None:
        where = f"Task {self.func.__qualname__!r}:"
        problems = check_policy_values(
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            delay=self.retry_delay,
            max_delay=None,
            where=where,
        )
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or self.timeout <= 0
        ):
            problems.append(
                f"{where} timeout must be a number of seconds > 0, got {self.timeout!r}."
            )
        for name in ("retry_on", "dont_retry_on"):
            value = getattr(self, name)
            if value is None:
                continue
            classes = (value,) if isinstance(value, type) else tuple(value)
            if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
                problems.append(f"{where} {name} must be exception classes, got {value!r}.")
            else:
                object.__setattr__(self, name, classes)
        if problems:
            raise InvalidTaskOptions(" ".join(problems))
        super(OffloadTask, self).__post_init__()

    def policy(self, defaults: RetryPolicy) -> RetryPolicy:
        """This task's retry policy: its own options over the backend's defaults."""
        return defaults.overridden(
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            delay=self.retry_delay,
            retry_on=self.retry_on,
            dont_retry_on=self.dont_retry_on,
        )


def task(
    function: Callable[..., Any] | None = None,
    *,
    priority: int = DEFAULT_TASK_PRIORITY,
    queue_name: str = DEFAULT_TASK_QUEUE_NAME,
    backend: str = DEFAULT_TASK_BACKEND_ALIAS,
    takes_context: bool = False,
    **options: Any,
) -> Any:
    """``django.tasks.task`` with offload's options, on every supported Django."""

    def wrapper(func: Callable[..., Any]) -> OffloadTask:
        cls = task_backends[backend].task_class
        if not (isinstance(cls, type) and issubclass(cls, OffloadTask)):
            raise InvalidTaskOptions(
                f"TASKS[{backend!r}] is not an offload backend; offload.task needs "
                "offload.backend.DatabaseBackend."
            )
        return cls(
            func=func,
            priority=priority,
            queue_name=queue_name,
            backend=backend,
            takes_context=takes_context,
            # Django 6.0's Task has no default for run_after; 6.1's does.
            run_after=None,
            **options,
        )

    if function is not None:
        return wrapper(function)
    return wrapper


# Whether a task's function is ``async def``, asked once per function: inspect's
# check was a twentieth of an enqueue, and Django's ``Task.call`` asks it again
# for every task a worker runs.
_async_functions: weakref.WeakKeyDictionary[Callable[..., Any], bool] = weakref.WeakKeyDictionary()


def is_async(func: Callable[..., Any]) -> bool:
    try:
        return _async_functions[func]
    except KeyError:
        found = _async_functions[func] = iscoroutinefunction(func)
        return found
    except TypeError:  # not weakly referenceable: ask every time
        return iscoroutinefunction(func)


def call(task: Task[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``task.call(*args, **kwargs)``, with the async check cached (see ``is_async``)."""
    if is_async(task.func):
        return async_to_sync(task.func)(*args, **kwargs)
    return task.func(*args, **kwargs)
