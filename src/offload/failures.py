"""Error records: what ``TaskResult.errors`` holds for each failed attempt.

One shape for every failure: an exception raised in task code (the runner
records it with its traceback), and failures no exception was raised for in
task code (a crash, a timeout, a lost worker, a cancellation), recorded with
a one-line traceback naming the exception class.
"""

from __future__ import annotations

import traceback as tracebacks
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
