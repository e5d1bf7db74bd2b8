"""Error records for failures no exception was raised for in task code: a crash,
a timeout, a lost worker, a cancellation. They have the shape the runner stores
for a raised exception, so ``TaskResult.errors`` reads them the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from offload.payload import encode


def error_record(
    kind: type[BaseException], message: str, *, attempt: int | None, worker_id: str | None
) -> dict[str, Any]:
    path = f"{kind.__module__}.{kind.__qualname__}"
    return {
        "exception_class_path": path,
        "traceback": f"{path}: {message}\n",
        "attempt": attempt,
        "worker_id": worker_id,
        "at": datetime.now(UTC).isoformat(),
    }


def error_json(
    kind: type[BaseException], message: str, *, attempt: int | None, worker_id: str | None
) -> str:
    return encode(
        error_record(kind, message, attempt=attempt, worker_id=worker_id), "an error record"
    )
