"""What the supervisor knows of one task process, from the lines it sends
(see ``protocol``): its figures, the tasks it is running, and why it is being
killed, if it is."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from offload.worker.protocol import Counts, TaskEvent


@dataclass
class Running:
    """A task a process said it started and has not said it ended."""

    attempt: int
    deadline: float | None  # monotonic time past which it is killed (its timeout)


@dataclass
class Child:
    slot: int
    worker_id: str
    proc: subprocess.Popen[bytes]
    control: int
    status: int
    started: float
    buffer: bytes = b""
    counts: Counts = field(default_factory=Counts)  # as of its last status line
    running: dict[int, Running] = field(default_factory=dict)  # by task id
    # Tasks whose code succeeded and whose outcome the process has not written
    # yet (write-behind): task id -> attempt.
    done: dict[int, int] = field(default_factory=dict)
    # Why this process is being killed on purpose: (task id, attempt, reason),
    # reason being "timeout" or "cancelled". None: not killed by us.
    culprit: tuple[int, int, str] | None = None
    ran_tasks: bool = False  # it got far enough to start a task
    # Where its ``metrics`` lines go (the supervisor's metrics port), or None.
    metrics: Callable[[bytes], bool] | None = None

    def take(self, data: bytes) -> None:
        """Read status lines out of ``data``; keep an unfinished line for later."""
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        now = time.monotonic()
        for line in lines:
            if line.startswith(b"stats"):
                self.counts = Counts.parse(line) or self.counts
                continue
            if line.startswith(b"metrics"):
                if self.metrics is not None:
                    self.metrics(line)
                continue
            event = TaskEvent.parse(line)
            if event is None:
                continue
            if event.kind == "start":
                self.ran_tasks = True
                deadline = None if event.seconds is None else now + event.seconds
                self.running[event.task_id] = Running(event.attempt, deadline)
            elif event.kind == "done":
                self.running.pop(event.task_id, None)
                self.done[event.task_id] = event.attempt
            elif event.kind == "end":
                self.running.pop(event.task_id, None)
                self.done.pop(event.task_id, None)
            elif event.kind == "kill" and self.culprit is None:
                self.culprit = (event.task_id, event.attempt, "cancelled")

    def overdue(self, now: float) -> tuple[int, int] | None:
        """A task that has run past its timeout, if any."""
        for task_id, task in self.running.items():
            if task.deadline is not None and now >= task.deadline:
                return task_id, task.attempt
        return None
