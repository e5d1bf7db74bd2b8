"""Error records: what ``TaskResult.errors`` holds for each failed attempt.

One shape for every failure: an exception raised in task code (the runner
records it with its traceback), and failures no exception was raised for in
task code (a crash, a timeout, a lost worker, a cancellation), recorded with
a one-line traceback naming the exception class.
"""

from __future__ import annotations

import traceback as tracebacks
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from offload.payload import encode


def error_record(
    kind: type[BaseException],
    message: str,
    *,
    attempt: int | None,
    worker_id: str | None,
    traceback: str | None = None,
) -> dict[str, Any]:
    """The record of a failure of class ``kind``; ``traceback`` defaults to one line."""
    path = f"{kind.__module__}.{kind.__qualname__}"
    return {
        "exception_class_path": path,
        "traceback": f"{path}: {message}\n" if traceback is None else traceback,
        "attempt": attempt,
        "worker_id": worker_id,
        "at": datetime.now(UTC).isoformat(),
    }


def exception_record(
    exc: BaseException, *, attempt: int | None, worker_id: str | None
) -> dict[str, Any]:
    """The record of an exception that was raised, with its whole traceback."""
    return error_record(
        type(exc),
        "",  # in the traceback already; str() of a broken exception could raise here
        attempt=attempt,
        worker_id=worker_id,
        traceback="".join(tracebacks.format_exception(exc)),
    )


def error_json(
    kind: type[BaseException], message: str, *, attempt: int | None, worker_id: str | None
) -> str:
    return encode(
        error_record(kind, message, attempt=attempt, worker_id=worker_id), "an error record"
    )


@dataclass(frozen=True)
class AttemptEnd:
    """What an attempt that ended without an outcome of its own leaves behind
    (see :func:`cut_short`)."""

    # Its entry in the task's error history; None: it leaves no trace.
    error_json: str | None

    @property
    def spent(self) -> bool:
        """The attempt counts against the task's budget (else its claim is undone)."""
        return self.error_json is not None


NOT_STARTED = AttemptEnd(None)


def cut_short(
    kind: type[BaseException], reason: str, *, started: bool, attempt: int, worker_id: str | None
) -> AttemptEnd:
    """The one rule for an attempt that ends without an outcome of its own.

    An attempt whose code started and did not finish (given back at shutdown,
    killed, lost with its process, rescued after its lease expired) may have
    done part of its work, and the task may run again: the attempt stays spent
    and its history says why (``kind``, ``reason``, the attempt and the worker).
    One given back before its code started leaves no trace and costs nothing.
    """
    if not started:
        return NOT_STARTED
    return AttemptEnd(error_json(kind, reason, attempt=attempt, worker_id=worker_id))
