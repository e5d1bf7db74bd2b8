"""``offload.backend.DatabaseBackend``: Django's task backend contract, stored in a database.

Configure it in settings::

    TASKS = {"default": {"BACKEND": "offload.backend.DatabaseBackend"}}

and run ``python manage.py offload worker``. Every capability flag below is true
because the worker really does it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import connections, transaction
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from offload.concurrency import LimitOf
from offload.conf import Options, parse_options
from offload.exceptions import (
    ArgumentsMismatch,
    BackendMisconfigured,
    DuplicateTask,
    InvalidArguments,
    InvalidTaskOptions,
    PayloadTooLarge,
    TaskCancelled,
)
from offload.failures import error_json
from offload.limits import MAX_CONCURRENCY_KEY_LENGTH, MAX_TASK_PATH_LENGTH
from offload.payload import encode_arguments
from offload.progress import Progress, stored_number
from offload.rates import RateOf
from offload.results import build_result, task_of
from offload.retries import RetryPolicy
from offload.signals import send_task_signal
from offload.store import Holder, NewTask, TaskStore
from offload.store.vendor import engine_problem
from offload.task import OffloadTask, check_arguments, is_async
from offload.task_options import option_problem
from offload.tracing import sending
from offload.uniqueness import RAISE, REPLACE, UniqueKeyOf

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from offload.models import TaskRecord

_P = ParamSpec("_P")
_R = TypeVar("_R")

APP_MISSING = "offload is not in INSTALLED_APPS, so its tables do not exist."


class DatabaseBackend(BaseTaskBackend):
    # Tasks may be enqueued with run_after: the claim query waits for it.
    supports_defer = True
    # async def tasks run on the worker's event loop.
    supports_async_task = True
    # Results are stored, so any process can read them with get_result().
    supports_get_result = True
    # The claim query orders by priority first.
    supports_priority = True

    # Django's Task plus a retry policy and a timeout (see offload.task).
    task_class = OffloadTask

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.config: Options = parse_options(self.options, self.queues)

    @cached_property
    def store(self) -> TaskStore:
        return TaskStore(self.config.database)

    def ensure_usable(self) -> None:
        """Raise ``BackendMisconfigured`` listing every problem in the settings."""
        problems = [*self.config.problems]
        if not apps.is_installed("offload"):
            problems.append(APP_MISSING)
        if problems:
            raise BackendMisconfigured(
                f"TASKS[{self.alias!r}] is misconfigured: " + " ".join(problems)
            )

    def validate_task(self, task: Task[..., Any]) -> None:
        problem = option_problem(task)
        if problem:
            raise InvalidTaskOptions(problem)
        super().validate_task(task)
        if len(task.module_path) > MAX_TASK_PATH_LENGTH:
            raise InvalidTask(
                f"Task path {task.module_path!r} is longer than {MAX_TASK_PATH_LENGTH} characters."
            )

    def enqueue(
        self, task: Task[_P, _R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[_P, _R]:
        return self.enqueue_step(task, args, kwargs)

    def enqueue_step(
        self, task: Task[_P, _R], args: list[Any], kwargs: dict[str, Any], receives: int = 0
    ) -> TaskResult[_P, _R]:
        """``enqueue``, for a task of a workflow that receives ``receives``
        values ahead of ``args`` when it runs (its upstreams' results, see
        ``offload.workflows``): the call is checked with them in place."""
        self.ensure_usable()
        self.validate_task(task)
        check_arguments(task, [None] * receives + list(args), kwargs)
        with sending(self.config.tracing, task.module_path, task.queue_name) as span:
            new = self._new_task(task, args, kwargs, span.carrier)
            # Built before the INSERT: whatever fails in building it writes nothing.
            result = self._pending(task, args, kwargs)
            unique = _unique_of(task, args, kwargs)
            limit = _limit_of(task, args, kwargs)
            rate = _rate_of(task, args, kwargs)
            if rate is not None:
                task_id, enqueued_at = self.store.enqueue_rated(replace(new, rate=rate))
                span.sent(task_id)
                return self._enqueued(result, task_id, enqueued_at)
            if unique is not None:
                found = self._enqueue_unique(replace(new, unique=unique, limit=limit), result)
                span.sent(int(found.id))
                return found
            if limit is not None:
                task_id, enqueued_at = self.store.enqueue_limited(replace(new, limit=limit))
            else:
                task_id, enqueued_at = self.store.enqueue(new)
            span.sent(task_id)
            return self._enqueued(result, task_id, enqueued_at)

    def enqueue_many(
        self,
        task: Task[_P, _R],
        calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
        receives: int = 0,
    ) -> list[TaskResult[_P, _R]]:
        """Enqueue ``task`` once per ``(args, kwargs)`` in ``calls``; return the results in order.

        The rows go in with one multi-row INSERT per ``OPTIONS["ENQUEUE_BATCH_SIZE"]``
        calls, all in one transaction (the caller's, if one is open). Every call
        is checked as ``enqueue`` checks it before anything is written: one bad
        call raises the same error, naming its index, and nothing is enqueued.

        A task with a unique key or a concurrency key is inserted one row at a
        time (each needs its own savepoint, or its key's gate), still in one
        transaction: a call whose key an earlier call of the batch holds is a
        duplicate like any other, a ``DuplicateTask`` raised for one call
        leaves nothing enqueued, and the calls of one concurrency key beyond
        its limit are BLOCKED. ``receives`` is as for ``enqueue_step``.
        """
        self.ensure_usable()
        self.validate_task(task)
        listed = list(calls)
        with sending(self.config.tracing, task.module_path, task.queue_name, len(listed)) as span:
            # What every row shares, worked out once rather than per call.
            template = self._new_task(task, [], {}, span.carrier)
            results = self._enqueue_calls(task, template, listed, receives)
            if len(results) == 1:
                span.sent(int(results[0].id))
            return results

    def _enqueue_calls(
        self,
        task: Task[_P, _R],
        template: NewTask,
        calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
        receives: int = 0,
    ) -> list[TaskResult[_P, _R]]:
        """The rows of ``calls`` (each ``template`` with its arguments), checked, then inserted."""
        leading = [None] * receives
        results: list[TaskResult[_P, _R]] = []
        rows = []
        for index, call in enumerate(calls):
            args, kwargs = _unpack_call(call, index)
            try:
                check_arguments(task, [*leading, *args], kwargs)
                args_json, kwargs_json = encode_arguments(
                    args, kwargs, self.config.max_payload_bytes, self.config.max_argument_depth
                )
            except (ArgumentsMismatch, InvalidArguments, PayloadTooLarge) as exc:
                # The class enqueue raises, with the call's index in the message.
                raise type(exc)(f"calls[{index}]: {exc}") from exc
            rows.append(replace(template, args_json=args_json, kwargs_json=kwargs_json))
            results.append(self._pending(task, args, kwargs))
        if isinstance(task, OffloadTask) and (
            task.unique_key is not None
            or task.concurrency_key is not None
            or task.rate_key is not None
        ):
            return self._enqueue_many_keyed(task, rows, results)
        stored = self.store.enqueue_many(rows, self.config.enqueue_batch_size)
        return [
            self._enqueued(result, task_id, enqueued_at)
            for (task_id, enqueued_at), result in zip(stored, results, strict=True)
        ]

    def _enqueue_many_keyed(
        self, task: OffloadTask, rows: list[NewTask], results: list[TaskResult[_P, _R]]
    ) -> list[TaskResult[_P, _R]]:
        """``enqueue_many`` of a task with a unique key or a concurrency key:
        row by row, in one transaction."""
        keyed = []
        for index, (new, result) in enumerate(zip(rows, results, strict=True)):
            try:
                unique = _unique_of(task, result.args, result.kwargs)
                limit = _limit_of(task, result.args, result.kwargs)
                rate = _rate_of(task, result.args, result.kwargs)
            except InvalidTask as exc:
                raise type(exc)(f"calls[{index}]: {exc}") from exc
            keyed.append(replace(new, unique=unique, limit=limit, rate=rate))
        done = []
        with transaction.atomic(using=self.config.database):
            for new, result in zip(keyed, results, strict=True):
                if new.rate is not None:
                    done.append(self._enqueued(result, *self.store.enqueue_rated(new)))
                elif new.unique is not None:
                    done.append(self._enqueue_unique(new, result))
                elif new.limit is not None:
                    done.append(self._enqueued(result, *self.store.enqueue_limited(new)))
                else:
                    done.append(self._enqueued(result, *self.store.enqueue(new)))
        return done

    def _enqueue_unique(self, new: NewTask, result: TaskResult[_P, _R]) -> TaskResult[_P, _R]:
        """Enqueue ``new``, which has a unique key; a duplicate does what its
        ``on_duplicate`` says (see ``offload.uniqueness``)."""
        if required_unique(new).on_duplicate != REPLACE:
            return self._unique_or_holder(new, result)
        # Replacing enqueues of one key take turns, on the key's lock taken
        # first: on MariaDB, a refused INSERT leaves a shared lock on the
        # holder's index entry until the transaction ends, and a hundred
        # callers' transactions, each then updating the holder, waited on
        # each other's shared locks for minutes.
        with transaction.atomic(using=self.config.database):
            self.store.lock_keys([(new.backend, replace_lock_name(required_unique(new).key))])
            return self._unique_or_holder(new, result)

    def _unique_or_holder(self, new: NewTask, result: TaskResult[_P, _R]) -> TaskResult[_P, _R]:
        found = self.store.enqueue_unique(new)
        if not isinstance(found, Holder):
            return self._enqueued(result, *found)
        unique = required_unique(new)
        if unique.on_duplicate == RAISE:
            raise DuplicateTask(unique.key, str(found.id))
        if (
            unique.on_duplicate == REPLACE
            and found.task_path == new.task_path
            and self.store.replace_waiting(found, new)
        ):
            # The holder now runs these arguments: the result is the new
            # call's, under the holder's id and enqueue time.
            object.__setattr__(result, "id", str(found.id))
            object.__setattr__(result, "enqueued_at", found.enqueued_at)
            return result
        # The holder may be another task of the backend with the same key.
        return cast("TaskResult[_P, _R]", _stored_result(found))

    def _new_task(
        self, task: Task[..., Any], args: Any, kwargs: Any, trace_context: str | None = None
    ) -> NewTask:
        """The row ``task(*args, **kwargs)`` becomes; raises if the arguments are not JSON."""
        args_json, kwargs_json = encode_arguments(
            args, kwargs, self.config.max_payload_bytes, self.config.max_argument_depth
        )
        return NewTask(
            task_path=task.module_path,
            backend=self.alias,
            queue_name=task.queue_name,
            priority=task.priority,
            run_after=task.run_after,
            args_json=args_json,
            kwargs_json=kwargs_json,
            is_async=is_async(task.func),
            max_attempts=self.max_attempts_for(task),
            timeout=self.timeout_for(task),
            trace_context=trace_context,
        )

    def _pending(
        self, task: Task[_P, _R], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[_P, _R]:
        """The TaskResult of a row about to be inserted (its id and time come after)."""
        result: TaskResult[_P, _R] = build_result(
            task,
            task_id=0,
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=list(args),
            kwargs=dict(kwargs),
            errors=[],
            worker_ids=[],
        )
        return result

    def _enqueued(
        self, result: TaskResult[_P, _R], task_id: int, enqueued_at: datetime
    ) -> TaskResult[_P, _R]:
        """``result`` given the id and time of its row, just inserted; sends ``task_enqueued``."""
        # TaskResult is frozen; Django's own backends set its fields this way too.
        object.__setattr__(result, "id", str(task_id))
        object.__setattr__(result, "enqueued_at", enqueued_at)
        send_task_signal(task_enqueued, type(self), result)
        return result

    def policy_for(self, task: Task[..., Any]) -> RetryPolicy:
        """The retry policy of ``task``: its own options over OPTIONS["RETRY"]."""
        if isinstance(task, OffloadTask):
            return task.policy(self.config.retry)
        return self.config.retry

    def max_attempts_for(self, task: Task[..., Any]) -> int:
        """``policy_for(task).max_attempts``, without building the policy (once per enqueue)."""
        own = task.max_attempts if isinstance(task, OffloadTask) else None
        return own if own is not None else self.config.retry.max_attempts

    def timeout_for(self, task: Task[..., Any]) -> float | None:
        """Seconds one attempt of ``task`` may run, or None for no limit."""
        own = task.timeout if isinstance(task, OffloadTask) else None
        return own if own is not None else self.config.timeout

    def _rows(self, result_id: str) -> QuerySet[TaskRecord]:
        """This backend's row of ``result_id`` (a query); raises
        ``TaskResultDoesNotExist`` for an id that cannot be one."""
        # Imported here: the backend may be built while apps are still loading.
        from offload.models import TaskRecord

        self.ensure_usable()
        try:
            pk = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        return TaskRecord.objects.using(self.config.database).filter(pk=pk, backend=self.alias)

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        row = self._rows(result_id).first()
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        return _stored_result(row)

    def get_results(self, task_ids: Sequence[int]) -> list[TaskResult[..., Any]]:
        """The results of ``task_ids`` in the order given, in one read per
        chunk (those not stored, or of another backend, left out)."""
        from offload.models import TaskRecord

        self.ensure_usable()
        found: dict[int, TaskRecord] = {}
        rows = TaskRecord.objects.using(self.config.database).filter(backend=self.alias)
        for start in range(0, len(task_ids), 500):
            found.update((row.pk, row) for row in rows.filter(pk__in=task_ids[start : start + 500]))
        return [_stored_result(found[pk]) for pk in task_ids if pk in found]

    def get_progress(self, result_id: str) -> Progress | None:
        """The latest progress task ``result_id`` reported (as written by its
        worker, up to ``PROGRESS_INTERVAL`` old), or None if it reported none.

        Django's ``TaskResult`` has no place for it, hence a method of its own:
        one query of four columns. Raises ``TaskResultDoesNotExist``.
        """
        row = (
            self._rows(result_id)
            .values_list("progress_current", "progress_total", "progress_message", "progress_at")
            .first()
        )
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        current, total, message, reported_at = row
        if current is None:
            return None
        whole = None if total is None else stored_number(total)
        return Progress(stored_number(current), whole, message or "", reported_at)

    def cancel(self, result_id: str) -> str:
        """Cancel a task: "cancelled" if it was READY (it will never run),
        "requested" if it is RUNNING (the worker stops it; see docs/reliability.md),
        "finished" if it had already ended. Raises ``TaskResultDoesNotExist``.
        """
        rows = self._rows(result_id)
        if not rows.exists():
            raise TaskResultDoesNotExist(result_id)
        cancelled, requested = self.store.cancel([int(result_id)], cancel_error_json())
        if cancelled:
            return "cancelled"
        return "requested" if requested else "finished"

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        messages: list[checks.CheckMessage] = [
            checks.Error(problem, obj=f"TASKS[{self.alias!r}]", id="offload.E002")
            for problem in self.config.problems
        ]
        if not apps.is_installed("offload"):
            messages.append(
                checks.Error(
                    APP_MISSING,
                    hint="Add 'offload' to INSTALLED_APPS and run migrate.",
                    obj=f"TASKS[{self.alias!r}]",
                    id="offload.E001",
                )
            )
        database = self.config.database
        problem = engine_problem(connections[database]) if database in settings.DATABASES else None
        if problem:
            messages.append(checks.Error(problem, obj=f"TASKS[{self.alias!r}]", id="offload.E003"))
        return messages


def _unique_of(
    task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> UniqueKeyOf | None:
    """The unique key of one call of ``task`` (None: none); raises ``InvalidTaskOptions``."""
    if isinstance(task, OffloadTask) and task.unique_key is not None:
        return task.unique_key_of(args, dict(kwargs))
    return None


def _limit_of(
    task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> LimitOf | None:
    """The concurrency key and limit of one call of ``task`` (None: none);
    raises ``InvalidTaskOptions``."""
    if isinstance(task, OffloadTask) and task.concurrency_key is not None:
        return task.limit_of(args, dict(kwargs))
    return None


def _rate_of(task: Task[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> RateOf | None:
    """The rate key and rate of one call of ``task`` (None: none); raises
    ``InvalidTaskOptions``."""
    if isinstance(task, OffloadTask) and task.rate_key is not None:
        return task.rate_of(args, dict(kwargs))
    return None


def replace_lock_name(key: str) -> str:
    """The name, among the concurrency keys' locks (``store.gate``), of the
    lock that replacing enqueues of unique key ``key`` take: one no
    concurrency key is given (a prefix, and a digest if the key is long)."""
    name = f"unique-replace:{key}"
    if len(name) > MAX_CONCURRENCY_KEY_LENGTH:
        name = "unique-replace:" + hashlib.sha256(key.encode()).hexdigest()
    return name


def required_unique(new: NewTask) -> UniqueKeyOf:
    if new.unique is None:
        raise ValueError("a task with a unique key was expected")
    return new.unique


def _unpack_call(call: object, index: int) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` of one call given to ``enqueue_many``, or a clear error."""
    if (
        isinstance(call, (tuple, list))
        and len(call) == 2
        and isinstance(call[0], (list, tuple))
        and isinstance(call[1], Mapping)
    ):
        return list(call[0]), dict(call[1])
    raise InvalidArguments(
        f"calls[{index}] must be a pair (args, kwargs): a list or tuple and a dict, "
        f"got {call!r:.200}."
    )


def cancel_error_json(detail: str = "Cancelled before it ran.") -> str:
    """The error recorded in the history of a task cancelled while READY."""
    return error_json(TaskCancelled, detail, attempt=None, worker_id=None)


def _stored_result(row: TaskRecord | Holder) -> TaskResult[..., Any]:
    """The result of a stored task, from its row or from the holder of a unique key."""
    return build_result(
        task_of(row),
        task_id=row.id,
        status=row.status,
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_attempted_at=row.last_attempted_at,
        args=row.args,
        kwargs=row.kwargs,
        errors=row.errors,
        worker_ids=row.worker_ids,
        return_value=row.return_value,
    )
