"""``OffloadTask``: Django's ``Task`` with a retry policy, a time limit, a
``cpu_bound`` flag (such tasks run one at a time per worker process), a
unique key (see ``offload.uniqueness``), a concurrency limit (see
``offload.concurrency``) and a rate limit (see ``offload.rates``).

On Django 6.1, ``django.tasks.task`` passes extra keyword arguments to the
backend's ``task_class``, so with offload as the backend::

    @task(max_attempts=5, retry_on=(ConnectionError,), timeout=60)
    def sync_inventory(): ...

works unchanged. ``offload.task.task`` takes the same arguments on Django 6.0
and 6.1 alike. Options left as None take the backend's ``OPTIONS["RETRY"]`` and
``OPTIONS["TIMEOUT"]`` when the task is enqueued.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Self

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME, Task, task_backends
from django.tasks.base import DEFAULT_TASK_PRIORITY

from offload.concurrency import ConcurrencyKey, LimitOf, limit_of_call, limit_problems
from offload.exceptions import ArgumentsMismatch, InvalidTaskOptions
from offload.rates import Rate, RateKey, RateOf, rate_of_call, rate_problems
from offload.retries import RetryPolicy, check_policy_values
from offload.uniqueness import UniqueKey, UniqueKeyOf, key_of_call, unique_problems

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
    # Computes in Python more than it waits: a worker process runs one such
    # task at a time and claims nothing else meanwhile (see worker.cpu_bound).
    cpu_bound: bool = False
    # A unique task (see offload.uniqueness): its key, a string or a callable
    # of the call's arguments; how long the key holds ("waiting", "active",
    # "period", None: "waiting", or "period" when unique_for is given); the
    # period; and what a duplicate enqueue does ("existing", "replace", "raise").
    unique_key: UniqueKey | None = None
    unique_scope: str | None = None
    unique_for: float | timedelta | None = None
    on_duplicate: str | None = None
    # A concurrency limit (see offload.concurrency): at most concurrency_limit
    # tasks with the key (a string or a callable of the call's arguments)
    # wait in a queue or run at once; None: 1.
    concurrency_key: ConcurrencyKey | None = None
    concurrency_limit: int | None = None
    # A rate limit (see offload.rates): at most rate_limit's count of tasks
    # with the key (a string or a callable of the call's arguments) start per
    # its period, written (count, seconds) or "N/s", "N/m", "N/h".
    rate_key: RateKey | None = None
    rate_limit: Rate | None = None

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
        if not isinstance(self.cpu_bound, bool):
            problems.append(f"{where} cpu_bound must be True or False, got {self.cpu_bound!r}.")
        elif self.cpu_bound and is_async(self.func):
            problems.append(
                f"{where} cpu_bound applies to sync functions: an async def task runs on "
                "the event loop, which CPU-heavy code would block (make it a plain def)."
            )
        problems += unique_problems(
            where, self.unique_key, self.unique_scope, self.unique_for, self.on_duplicate
        )
        problems += limit_problems(where, self.concurrency_key, self.concurrency_limit)
        problems += rate_problems(
            where,
            self.rate_key,
            self.rate_limit,
            {"unique_key": self.unique_key, "concurrency_key": self.concurrency_key},
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

    def unique(
        self,
        key: UniqueKey | None,
        *,
        scope: str | None = None,
        unique_for: float | timedelta | None = None,
        on_duplicate: str | None = None,
    ) -> Self:
        """This task with unique key ``key`` (None: no key), for the enqueues
        made through the copy, as ``using()`` sets a priority or a queue::

            sync_customer.unique(f"customer-{customer.pk}").enqueue(customer.pk)

        ``scope``, ``unique_for`` and ``on_duplicate`` left as None keep the
        task's own. Bad values raise ``InvalidTask``, as on ``@task``.
        """
        changes: dict[str, Any] = {"unique_key": key}
        if scope is not None:
            changes["unique_scope"] = scope
        if unique_for is not None:
            changes["unique_for"] = unique_for
        if on_duplicate is not None:
            changes["on_duplicate"] = on_duplicate
        return replace(self, **changes)

    def unique_key_of(self, args: Sequence[Any], kwargs: dict[str, Any]) -> UniqueKeyOf | None:
        """The unique key of ``self(*args, **kwargs)`` and how it holds, or None."""
        if self.unique_key is None:
            return None
        return key_of_call(
            f"Task {self.func.__qualname__!r}:",
            self.unique_key,
            self.unique_scope,
            self.unique_for,
            self.on_duplicate,
            args,
            kwargs,
        )

    def limited(self, key: ConcurrencyKey | None, limit: int | None = None) -> Self:
        """This task with concurrency key ``key`` (None: no limit) and ``limit``
        (None: the task's own, else 1), for the enqueues made through the copy,
        as ``using()`` sets a priority or a queue::

            call_partner_api.limited("partner-api", limit=2).enqueue(order.pk)

        Bad values raise ``InvalidTask``, as on ``@task``.
        """
        changes: dict[str, Any] = {"concurrency_key": key}
        if limit is not None:
            changes["concurrency_limit"] = limit
        elif key is None:
            changes["concurrency_limit"] = None
        return replace(self, **changes)

    def limit_of(self, args: Sequence[Any], kwargs: dict[str, Any]) -> LimitOf | None:
        """The concurrency key and limit of ``self(*args, **kwargs)``, or None."""
        if self.concurrency_key is None:
            return None
        return limit_of_call(
            f"Task {self.func.__qualname__!r}:",
            self.concurrency_key,
            self.concurrency_limit,
            args,
            kwargs,
        )

    def rate_limited(self, key: RateKey | None, rate: Rate | None = None) -> Self:
        """This task with rate key ``key`` (None: no rate limit) and ``rate``
        (None: the task's own), for the enqueues made through the copy, as
        ``using()`` sets a priority or a queue::

            call_partner_api.rate_limited(f"partner-{partner.pk}", "5/s").enqueue(order.pk)

        Bad values raise ``InvalidTask``, as on ``@task``.
        """
        changes: dict[str, Any] = {"rate_key": key}
        if rate is not None:
            changes["rate_limit"] = rate
        elif key is None:
            changes["rate_limit"] = None
        return replace(self, **changes)

    def rate_of(self, args: Sequence[Any], kwargs: dict[str, Any]) -> RateOf | None:
        """The rate key and rate of ``self(*args, **kwargs)``, or None."""
        if self.rate_key is None:
            return None
        return rate_of_call(
            f"Task {self.func.__qualname__!r}:", self.rate_key, self.rate_limit, args, kwargs
        )

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


# Each function's signature, worked out once: inspect.signature costs more
# than the rest of an enqueue's checks together. None: no signature to check
# against (a builtin or a callable inspect cannot read), so none is checked.
_signatures: weakref.WeakKeyDictionary[Callable[..., Any], _Signature | None] = (
    weakref.WeakKeyDictionary()
)

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True, slots=True)
class _Signature:
    signature: inspect.Signature
    # For the usual call with positional arguments only, the counts that fit
    # (most: None for *args), when the function has no required keyword-only
    # parameter; None otherwise. Signature.bind costs a few microseconds.
    positional: tuple[int, int | None] | None


def _shape(signature: inspect.Signature) -> _Signature:
    kinds = [parameter.kind for parameter in signature.parameters.values()]
    named = [p for p in signature.parameters.values() if p.kind in _POSITIONAL]
    required_keyword = any(
        p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty
        for p in signature.parameters.values()
    )
    positional = None
    if not required_keyword:
        least = sum(1 for p in named if p.default is p.empty)
        most = None if inspect.Parameter.VAR_POSITIONAL in kinds else len(named)
        positional = (least, most)
    return _Signature(signature, positional)


def _signature_of(func: Callable[..., Any], takes_context: bool) -> _Signature | None:
    try:
        return _signatures[func]
    except (KeyError, TypeError):
        pass
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        found = None
    else:
        if takes_context:
            # The worker passes the context first; the caller never does.
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        found = _shape(signature)
    with contextlib.suppress(TypeError):  # not weakly referenceable: worked out every time
        _signatures[func] = found
    return found


def check_arguments(task: Task[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    """Raise ``ArgumentsMismatch`` unless ``task`` can be called with ``args`` and ``kwargs``.

    The message is Python's own for the call (``too many positional arguments``,
    ``missing a required argument: 'b'``), naming the task.
    """
    found = _signature_of(task.func, task.takes_context)
    if found is None:
        return
    if not kwargs and found.positional is not None:
        least, most = found.positional
        if least <= len(args) and (most is None or len(args) <= most):
            return
    try:
        found.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ArgumentsMismatch(
            f"Task {task.module_path} cannot take these arguments: {exc}."
        ) from None
