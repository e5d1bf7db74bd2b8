"""Writing the progress that running tasks report.

Tasks put reports on a board in memory (``offload.progress``); the dispatcher
writes what changed at most every ``PROGRESS_INTERVAL`` seconds, in one
statement, and a task's last report just before its outcome.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db import DatabaseError

from offload.progress import AttemptKey, Progress, ProgressBoard
from offload.store import TaskStore


class ProgressWrites:
    """The board's reports, written on the dispatcher's connection."""

    def __init__(self, board: ProgressBoard, interval: float) -> None:
        self.board = board
        self.interval = interval
        self.next_write = 0.0

    def due_at(self) -> float | None:
        """When the next write is due; None: nothing to write."""
        return self.next_write if self.board else None

    def write_due(self, store: TaskStore) -> None:
        """Write the progress reported since the last write, if that was long enough ago."""
        if not self.board:
            return
        now = time.monotonic()
        if now < self.next_write:
            return
        self.next_write = now + self.interval
        self._write(store, self.board.take_all())

    def write_ending(self, store: TaskStore, keys: Iterable[AttemptKey]) -> None:
        """Write the last reports of attempts whose outcome is written next."""
        if self.board:
            self._write(store, self.board.take(keys))

    def _write(self, store: TaskStore, reports: dict[AttemptKey, Progress]) -> None:
        if not reports:
            return
        store.prepare()
        try:
            store.write_progress(reports)
        except DatabaseError:
            self.board.put_back(reports)  # written with the next try
            raise
