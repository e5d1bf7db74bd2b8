"""When a task process should be replaced by a fresh one.

Past ``--max-tasks-per-child`` tasks, or above ``--max-memory-per-child``
bytes of resident memory, the process stops claiming, finishes its running
tasks (never cut short for this) and exits with ``EXIT_RECYCLE``; the
supervisor starts its replacement at once.
"""

from __future__ import annotations

from collections.abc import Callable

from offload.worker.memory import resident_bytes


class Recycling:
    """The two limits, and whether they are passed."""

    def __init__(
        self,
        max_tasks: int | None,
        max_memory: int | None,
        measure: Callable[[], int | None] = resident_bytes,
    ) -> None:
        self.max_tasks = max_tasks
        self.max_memory = max_memory
        self._measure = measure

    def memory_over(self) -> str | None:
        """Why this process is over ``max_memory``, or None if it is not."""
        if self.max_memory is None:
            return None
        used = self._measure()
        if used is None or used <= self.max_memory:
            return None
        return f"uses {used >> 20} MiB (max memory per child: {self.max_memory >> 20} MiB)"

    def after_settled(self, finished: int, is_async: bool) -> str | None:
        """Why to recycle after an outcome was settled, or None: past ``max_tasks``,
        or over ``max_memory`` after an async task (a sync task's own thread
        checks memory before it takes its next one, see ``loop``)."""
        if self.max_tasks is not None and finished >= self.max_tasks:
            return f"ran {finished} tasks (max tasks per child: {self.max_tasks})"
        if is_async:
            return self.memory_over()
        return None
