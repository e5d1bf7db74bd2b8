"""Run one claimed task: resolve it, call it, and hand the outcome to ``record``.

The runner writes nothing itself; ``record`` (the worker's, which goes through
the store with its fencing) is called before ``task_finished`` is sent, so a
signal receiver that calls ``get_result()`` sees the final state. The failure
signal is sent inside the ``except`` block, as Django's own backends do, so
receivers can read ``sys.exc_info()``.

``run`` is for sync tasks in a worker thread, ``arun`` for ``async def`` tasks
on the worker's event loop; both share everything but the call itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskContext
from django.tasks.signals import task_finished, task_started

from offload.exceptions import CorruptTask, InvalidArguments, TaskCancelled
from offload.failures import exception_record
from offload.payload import encode_result
from offload.progress import Progress, make_progress
from offload.results import build_result, finish_result, task_of
from offload.signals import heard
from offload.states import State
from offload.store import ClaimedTask
from offload.task import call
from offload.tracing import OFF, Attempting, active, attempting

logger = logging.getLogger("offload.worker")


class WorkerInterrupted(BaseException):
    """Raised inside a running task when the worker is told to stop at once.

    A BaseException so that task code's ``except Exception`` does not swallow it.
    """


@dataclass(frozen=True, slots=True)
class Outcome:
    succeeded: bool
    return_json: str | None
    errors: list[dict[str, Any]]  # the task's whole error history, this attempt's last
    # None when the task could not even be resolved, and for a success, whose
    # TaskResult its attempt makes when it announces it.
    result: TaskResult[..., Any] | None
    # Seconds until the next attempt, when the failure earns one; None: final.
    retry_in: float | None = None
    cancelled: bool = False  # the task stopped itself on a cancel request
    # Whether the task's code began (False: it could not be resolved, or was
    # cancelled before it started): only then is a start written with it.
    began: bool = True

    @property
    def final(self) -> bool:
        return self.succeeded or self.retry_in is None


@dataclass(frozen=True, slots=True, kw_only=True)
class OffloadTaskContext(TaskContext):  # type: ignore[misc,type-arg]  # stubs: not frozen
    """Django's ``TaskContext``, plus whether the task has been asked to stop,
    and a way to report how far it got.

    A long task that takes the context checks ``cancel_requested`` between steps
    (or calls ``raise_if_cancelled()``); raising ``TaskCancelled`` ends it as
    CANCELLED. One that never checks is killed after the grace period.
    """

    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    # Where reports go (the worker's progress board); None: they are checked, then dropped.
    progress_sink: Callable[[Progress], None] | None = field(default=None, repr=False)

    def report_progress(
        self, current: float, total: float | None = None, message: str = ""
    ) -> None:
        """Report that the task has done ``current`` of ``total`` (None: unknown).

        Returns at once, in sync and async tasks alike: the worker writes the
        latest report every ``OPTIONS["PROGRESS_INTERVAL"]`` seconds, and the
        last one before the outcome. Raises ``InvalidProgress`` (a ValueError)
        for a negative or non-finite number or ``current`` above ``total``;
        ``message`` is cut to ``offload.progress.MAX_MESSAGE_LENGTH`` characters.
        """
        progress = make_progress(current, total, message)
        if self.progress_sink is not None:
            self.progress_sink(progress)

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise TaskCancelled("Cancelled while running.")


Announce = Callable[[], None]
# Writes an outcome (through the worker) and says whether it was written, so
# the caller announces it. A success may instead be written behind its thread
# (see ``worker.announcer``): the recorder then returns False at once and runs
# ``announce`` itself once the write landed. Failures are never written behind.
Recorder = Callable[[Outcome, Announce], bool]
AsyncRecorder = Callable[[Outcome], Awaitable[bool]]


def _nothing() -> None:
    """The announcement handed with a failure: the caller announces those itself."""


class _Attempt:
    """One attempt at one task: the results it reports and the outcomes it records."""

    def __init__(
        self,
        claimed: ClaimedTask,
        worker_id: str,
        cancel: threading.Event | None = None,
        progress: Callable[[Progress], None] | None = None,
        backend: BaseTaskBackend | None = None,
    ) -> None:
        self.claimed = claimed
        self.worker_id = worker_id
        self.cancel = cancel or threading.Event()
        self.progress = progress
        if claimed.problem:
            raise CorruptTask(claimed.problem)
        self.task: Task[..., Any] = task_of(claimed)
        # The signals' sender and the retry policy need the task's backend:
        # the worker's own, unless the row names another.
        if backend is None or backend.alias != self.task.backend:
            backend = self.task.get_backend()
        self.backend = backend
        self._finished: tuple[datetime, Any] | None = None
        # When the code began (set by start): this attempt's start in its
        # TaskResult, and the task's own on its first attempt.
        self.began: datetime | None = None

    @cached_property
    def running(self) -> TaskResult[..., Any]:
        """The attempt's TaskResult, built on first use: a task that takes no
        context, run where no one hears its signals, never needs one."""
        return self._result(State.RUNNING)

    def _result(
        self,
        status: str,
        finished_at: datetime | None = None,
        errors: list[dict[str, Any]] | None = None,
        value: Any = None,
    ) -> TaskResult[..., Any]:
        claimed = self.claimed
        return build_result(
            self.task,
            task_id=claimed.id,
            status=status,
            enqueued_at=claimed.enqueued_at,
            started_at=claimed.started_at or self.began,
            finished_at=finished_at,
            last_attempted_at=self.began or claimed.last_attempted_at,
            args=claimed.args,
            kwargs=claimed.kwargs,
            errors=claimed.errors if errors is None else errors,
            worker_ids=claimed.worker_ids,
            return_value=value,
        )

    def start(self) -> tuple[list[Any], dict[str, Any]]:
        self.began = datetime.now(UTC)
        if heard(task_started):
            task_started.send(type(self.backend), task_result=self.running)
        # A workflow task's upstream results come first, as its own
        # arguments were bound after them (see offload.workflows).
        args = [*self.claimed.upstream, *self.claimed.args]
        if self.task.takes_context:
            context = OffloadTaskContext(
                task_result=self.running, cancel_event=self.cancel, progress_sink=self.progress
            )
            args.insert(0, context)
        return args, self.claimed.kwargs

    def succeeded(self, value: Any) -> Outcome:
        try:
            return_json = encode_result(value)
        except InvalidArguments as exc:
            # Recorded as Django's own backends record a return value they
            # cannot store: a builtins.TypeError for a type JSON lacks, a
            # builtins.ValueError for a JSON type holding a value no database
            # stores (NUL, lone surrogate, huge int, too deep), as Django's
            # normalize_json does for bytes that are not UTF-8. Not chained:
            # offload's argument error is no part of the task's failure.
            kind = ValueError if isinstance(exc, ValueError) else TypeError
            raise kind(str(exc)) from None
        # The finished TaskResult is made when announced, if anyone hears it.
        self._finished = (datetime.now(UTC), value)
        return Outcome(True, return_json, self.claimed.errors, None)

    def failed(self, exc: BaseException) -> Outcome:
        errors = [
            *self.claimed.errors,
            exception_record(exc, attempt=self.claimed.attempt, worker_id=self.worker_id),
        ]
        began = self.began is not None
        if isinstance(exc, TaskCancelled):
            finished = self._result(TaskResultStatus.FAILED, datetime.now(UTC), errors)
            return Outcome(False, None, errors, finished, cancelled=True, began=began)
        retry_in = None
        policy_for = getattr(self.backend, "policy_for", None)
        if policy_for is not None:
            policy = policy_for(self.task)
            if policy.retries_exception(exc, self.claimed.attempt):
                retry_in = policy.delay_after(self.claimed.attempt)
        if retry_in is not None:
            # Not finished: the result goes back to READY until the next attempt.
            ready = self._result(State.READY, None, errors)
            return Outcome(False, None, errors, ready, retry_in, began=began)
        finished = self._result(TaskResultStatus.FAILED, datetime.now(UTC), errors)
        return Outcome(False, None, errors, finished, began=began)

    def announce(self, outcome: Outcome) -> None:
        # task_finished means finished: an attempt that will be retried is not.
        if not outcome.final or not heard(task_finished, failed=not outcome.succeeded):
            return
        result = outcome.result
        if result is None and self._finished is not None:
            # The running result becomes the finished one, as in Django's own
            # backends, rather than a second TaskResult built per task.
            result = self.running
            finish_result(result, State.SUCCESSFUL, *self._finished)
        task_finished.send(type(self.backend), task_result=result)


def _unresolvable(claimed: ClaimedTask, worker_id: str, exc: Exception) -> Outcome:
    # A row that no longer resolves to a Task fails at once with a clear error;
    # it must never block the tasks behind it.
    logger.error("Task %s cannot run: %s", claimed.id, exc)
    return Outcome(
        False,
        None,
        [*claimed.errors, exception_record(exc, attempt=claimed.attempt, worker_id=worker_id)],
        None,
        began=False,
    )


def _span(
    claimed: ClaimedTask, worker_id: str, backend: BaseTaskBackend | None
) -> AbstractContextManager[Attempting]:
    """The attempt's span (see ``offload.tracing``); OFF when the backend does not trace."""
    config = getattr(backend, "config", None)
    return attempting(
        getattr(config, "tracing", True),
        task_id=claimed.id, task_path=claimed.task_path, queue=claimed.queue_name,
        attempt=claimed.attempt, worker_id=worker_id, carrier=claimed.trace_context,
        errors=claimed.errors,
    )  # fmt: skip


def _failed(claimed: ClaimedTask, worker_id: str, exc: Exception, span: Attempting) -> Outcome:
    span.failed(exc, claimed.attempt, None)
    return _unresolvable(claimed, worker_id, exc)


def run(
    claimed: ClaimedTask,
    worker_id: str,
    record: Recorder,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    *,
    backend: BaseTaskBackend | None = None,
) -> Outcome:
    """Run sync task ``claimed`` in this thread, record the outcome, and return it.

    A success handed to ``record`` with its announcement may be written behind:
    this then returns without waiting for the write (see ``worker.announcer``).
    """
    if active() is None:  # not traced: not even the with-block, which costs more than this
        return _run(claimed, worker_id, record, cancel, progress, backend, OFF)
    with _span(claimed, worker_id, backend) as span:
        return _run(claimed, worker_id, record, cancel, progress, backend, span)


def _run(
    claimed: ClaimedTask,
    worker_id: str,
    record: Recorder,
    cancel: threading.Event | None,
    progress: Callable[[Progress], None] | None,
    backend: BaseTaskBackend | None,
    span: Attempting,
) -> Outcome:
    try:
        attempt = _Attempt(claimed, worker_id, cancel, progress, backend)
    except Exception as exc:
        outcome = _failed(claimed, worker_id, exc, span)
        record(outcome, _nothing)
        return outcome
    if attempt.cancel.is_set():
        outcome = attempt.failed(TaskCancelled("Cancelled before it started."))
        if record(outcome, _nothing):
            attempt.announce(outcome)
        return outcome
    try:
        args, kwargs = attempt.start()
    except Exception as exc:  # e.g. arguments too deep to rebuild: FAILED, not RUNNING
        outcome = _failed(claimed, worker_id, exc, span)
        record(outcome, _nothing)
        return outcome
    try:
        # call() runs an async function too (through async_to_sync), as
        # Django's Task.call does, for a row enqueued before its function
        # became async; see loop._claim.
        outcome = attempt.succeeded(call(attempt.task, args, kwargs))
    except (WorkerInterrupted, KeyboardInterrupt):
        raise  # the worker is being stopped; this is not the task's failure
    except BaseException as exc:
        outcome = attempt.failed(exc)
        span.failed(exc, claimed.attempt, outcome.retry_in)
        if record(outcome, _nothing):
            attempt.announce(outcome)
        return outcome
    if record(outcome, lambda: attempt.announce(outcome)):
        attempt.announce(outcome)
    return outcome


async def arun(
    claimed: ClaimedTask,
    worker_id: str,
    record: AsyncRecorder,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    backend: BaseTaskBackend | None = None,
) -> Outcome:
    """Run ``claimed`` on the running event loop, record the outcome, and return it."""
    if active() is None:
        return await _arun(claimed, worker_id, record, cancel, progress, backend, OFF)
    with _span(claimed, worker_id, backend) as span:
        return await _arun(claimed, worker_id, record, cancel, progress, backend, span)


async def _arun(
    claimed: ClaimedTask,
    worker_id: str,
    record: AsyncRecorder,
    cancel: threading.Event | None,
    progress: Callable[[Progress], None] | None,
    backend: BaseTaskBackend | None,
    span: Attempting,
) -> Outcome:
    try:
        attempt = _Attempt(claimed, worker_id, cancel, progress, backend)
    except Exception as exc:
        outcome = _failed(claimed, worker_id, exc, span)
        await record(outcome)
        return outcome
    if attempt.cancel.is_set():
        outcome = attempt.failed(TaskCancelled("Cancelled before it started."))
        if await record(outcome):
            attempt.announce(outcome)
        return outcome
    try:
        args, kwargs = attempt.start()
    except Exception as exc:  # e.g. arguments too deep to rebuild: FAILED, not RUNNING
        outcome = _failed(claimed, worker_id, exc, span)
        await record(outcome)
        return outcome
    try:
        outcome = attempt.succeeded(await attempt.task.acall(*args, **kwargs))
    except (asyncio.CancelledError, WorkerInterrupted, KeyboardInterrupt):
        raise  # cancelled by the worker stopping: not the task's failure
    except BaseException as exc:
        outcome = attempt.failed(exc)
        span.failed(exc, claimed.attempt, outcome.retry_in)
        if await record(outcome):
            attempt.announce(outcome)
        return outcome
    if await record(outcome):
        attempt.announce(outcome)
    return outcome
