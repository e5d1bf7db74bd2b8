"""Small builders shared by the unit tests of the worker's parts."""

from datetime import UTC, datetime

from offload.store import ClaimedTask
from offload.worker.runner import Outcome


def claimed(
    task_id: int = 1, attempt: int = 1, *, is_async: bool = False,
    task_path: str = "tests.app.tasks.add", queue_name: str = "default",
) -> ClaimedTask:  # fmt: skip
    now = datetime.now(UTC)
    return ClaimedTask(
        id=task_id, task_path=task_path, backend="default", queue_name=queue_name,
        priority=0, run_after=None, available_at=now, enqueued_at=now, started_at=now,
        last_attempted_at=now, attempt=attempt, worker_ids=["w"], errors=[], args=[1, 2],
        kwargs={}, is_async=is_async,
    )  # fmt: skip


def success(value: str = "3") -> Outcome:
    return Outcome(True, value, [], None)


def failure(*, retry_in: float | None = None, cancelled: bool = False) -> Outcome:
    return Outcome(False, None, [{"attempt": 1}], None, retry_in=retry_in, cancelled=cancelled)
