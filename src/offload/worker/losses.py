"""What becomes of the tasks of a task process that died or was killed.

The supervisor records them here, on a short-lived connection of its own: the
tasks the process had started get a verdict (``record_lost_attempts``), and
every other task it held goes back untouched (``give_back``).
"""

from __future__ import annotations

import logging
import signal

from django.db import DatabaseError, connections

from offload.conf import Options
from offload.exceptions import (
    AttemptGivenBack,
    OutcomeLost,
    TaskCancelled,
    TaskTimedOut,
    WorkerCrashed,
)
from offload.failures import cut_short
from offload.store import TaskStore
from offload.worker.children import Child

logger = logging.getLogger("offload.worker")


def how_it_ended(code: int) -> str:
    """A process's exit code for the logs: "signal SIGKILL", "exit code 1"."""
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def record_lost_attempts(options: Options, child: Child, how: str) -> None:
    """Record what happened to the tasks a dead process had started.

    The task it was killed for gets its verdict (a timeout is a lost attempt,
    tried again while attempts remain; a cancellation is final). On a crash,
    every started task spent an attempt: any of them may be the cause, and a
    task that keeps crashing its process must run out of attempts. Tasks
    that were running beside the one killed on purpose are given back with
    the attempt they used but no error.
    """
    alias = options.database
    store = TaskStore(alias)
    culprit = child.culprit
    try:
        for task_id, task in child.running.items():
            attempt = task.attempt
            if culprit is not None and task_id == culprit[0]:
                _killed(store, options, child, task_id, attempt, culprit[2])
            elif culprit is not None:
                end = cut_short(
                    AttemptGivenBack,
                    f"attempt {attempt} given back unfinished: its process {child.worker_id} "
                    f"was killed for task {culprit[0]}",
                    started=True, attempt=attempt, worker_id=child.worker_id,
                )  # fmt: skip
                store.release(task_id, attempt, end)
            else:
                end = cut_short(
                    WorkerCrashed,
                    f"process {child.worker_id} died ({how}) during attempt {attempt}",
                    started=True, attempt=attempt, worker_id=child.worker_id,
                )  # fmt: skip
                delay = options.retry.delay_after(attempt)
                if store.attempt_lost(task_id, attempt, end, delay):
                    logger.warning(
                        "Task %s lost attempt %d with its process; it is tried again in "
                        "%.1fs if attempts remain, else FAILED", task_id, attempt, delay,
                    )  # fmt: skip
    except DatabaseError:
        logger.exception(
            "Could not record the tasks of %s; they return when their lease expires",
            child.worker_id,
        )
    finally:
        connections[alias].close()
    child.running.clear()


def _killed(
    store: TaskStore, options: Options, child: Child, task_id: int, attempt: int, reason: str
) -> None:
    """The verdict on the task a process was killed for: cancelled, or timed out."""
    if reason == "cancelled":
        end = cut_short(
            TaskCancelled, "Stopped by force: it did not stop within the "
            f"{options.cancel_grace_seconds:g}s grace period.",
            started=True, attempt=attempt, worker_id=child.worker_id,
        )  # fmt: skip
        if end.error_json is not None:
            store.cancelled(task_id, attempt, end.error_json)
        return
    timeout = options.timeout
    end = cut_short(
        TaskTimedOut, f"attempt {attempt} ran past its timeout and was killed"
        + (f" (default timeout {timeout:g}s)" if timeout else ""),
        started=True, attempt=attempt, worker_id=child.worker_id,
    )  # fmt: skip
    store.attempt_lost(task_id, attempt, end, options.retry.delay_after(attempt))


def give_back(alias: str, child: Child) -> int:
    """Return the tasks a dead process had claimed but not started, untouched;
    return how many.

    The tasks whose code had finished but whose outcome the process had not
    written yet (see ``worker.announcer``) go back too: nothing recorded them,
    so they must run again. Their code did run, so each such attempt is in the
    task's history as ``OutcomeLost`` and keeps its attempt number (the rule of
    ``failures.cut_short``): a re-run always leaves a trace.
    """
    worker_id = child.worker_id
    store = TaskStore(alias)
    try:
        for task_id, attempt in child.done.items():
            end = cut_short(
                OutcomeLost,
                f"attempt {attempt} finished but its outcome was lost with process "
                f"{worker_id}; it runs again",
                started=True, attempt=attempt, worker_id=worker_id,
            )  # fmt: skip
            if store.release(task_id, attempt, end):
                logger.warning(
                    "Task %s attempt %d finished but its outcome was lost with process %s; "
                    "it runs again", task_id, attempt, worker_id,
                )  # fmt: skip
        child.done.clear()
        return store.release_owner(worker_id)
    except DatabaseError:
        logger.exception("Could not give back the tasks of %s", worker_id)
        return 0
    finally:
        connections[alias].close()
