"""What a worker says about itself: its process title, its figures for the
supervisor, and one log line per finished task."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

from offload.store import ClaimedTask
from offload.worker import protocol
from offload.worker.runner import Outcome
from offload.worker.titles import set_title

logger = logging.getLogger("offload.worker")

# How often the process title and the supervisor's figures are refreshed.
REPORT_SECONDS = 0.25


@dataclass
class WorkerStats(protocol.Counts):
    # Why run() returned: drained (burst), stopped, forced, recycled.
    reason: str = ""

    def count(self, outcome: Outcome, written: bool = True) -> None:
        """Count an outcome the store took (``written``) or refused as stale."""
        if not written:
            self.stale += 1
        elif outcome.succeeded:
            self.succeeded += 1
        elif outcome.cancelled:
            self.cancelled += 1
        elif outcome.retry_in is not None:
            self.retried += 1
        else:
            self.failed += 1


class Reporter:
    """Refreshes the process title and sends the figures, at most every REPORT_SECONDS."""

    def __init__(
        self, worker_id: str, threads: int, status_fd: int | None, titles: bool = True
    ) -> None:
        self.worker_id = worker_id
        self.titles = titles
        self.threads = threads
        self.status_fd = status_fd
        self._last = 0.0

    def due(self, force: bool = False) -> bool:
        """Whether to report now (then reported as done): ``force``, or REPORT_SECONDS passed."""
        now = time.monotonic()
        if not force and now - self._last < REPORT_SECONDS:
            return False
        self._last = now
        return True

    def report(
        self, state: str, stats: WorkerStats, sync: tuple[int, int], async_: tuple[int, int]
    ) -> None:
        """``sync`` and ``async_``: (running, claimed and waiting) of each pool."""
        # Running and prefetched apart: "busy, 7/4 threads" would read as a bug.
        running, queued = sync
        running_async, queued_async = async_
        if self.titles:
            self._title(state, stats, running, queued, running_async, queued_async)
        self.tell(stats.line())

    def _title(
        self, state: str, stats: WorkerStats, running: int, queued: int,
        running_async: int, queued_async: int,
    ) -> None:  # fmt: skip
        set_title(
            f"worker {self.worker_id}: {state}, {running}/{self.threads} threads"
            f"{f' (+{queued} queued)' if queued else ''}, "
            f"{running_async} async{f' (+{queued_async} queued)' if queued_async else ''}, "
            f"{stats.processed} done"
        )

    def tell(self, lines: bytes) -> None:
        """Send lines (figures, ``protocol.task_line``) to the supervisor."""
        if self.status_fd is not None and lines:
            with contextlib.suppress(OSError):  # the supervisor is gone: the control pipe says so
                os.write(self.status_fd, lines)


def log_outcome(claimed: ClaimedTask, outcome: Outcome, elapsed: float, worker_id: str) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return  # -v 0: skip building the fields, once per task
    logger.info(
        "task id=%s path=%s queue=%s attempt=%s duration=%.3fs outcome=%s",
        claimed.id, claimed.task_path, claimed.queue_name, claimed.attempt, elapsed,
        label(outcome),
        extra={
            "task_id": claimed.id, "task_path": claimed.task_path,
            "queue": claimed.queue_name, "attempt": claimed.attempt,
            "duration": round(elapsed, 6),
            "outcome": label(outcome),
            "worker_id": worker_id,
        },
    )  # fmt: skip


def label(outcome: Outcome) -> str:
    if outcome.succeeded:
        return "SUCCESSFUL"
    if outcome.cancelled:
        return "CANCELLED"
    return "RETRY" if outcome.retry_in is not None else "FAILED"
