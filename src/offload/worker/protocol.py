"""What the supervisor and its task processes say to each other.

Each task process gets two pipes. On the control pipe the supervisor writes
single bytes; end of file means the supervisor is gone (even when it was
killed with SIGKILL), and the process gives its tasks back and exits, so no
task process outlives its supervisor. On the status pipe the process writes
short text lines: figures the supervisor aggregates for progress and the final
summary, and the tasks the process starts and ends.

Task lines exist so the supervisor can act for a process that cannot: kill it
when a task outruns its timeout, and, when it dies, tell the tasks it had
started (an attempt is spent, the crash is recorded) from the ones it had only
claimed (given back untouched). A task's ``start`` line is written by the
thread that runs it, before the task's code runs, so a task that kills its
process at once is still known to have started. Every write is at most
PIPE_BUF bytes of whole lines (``writes``), so the kernel writes each at once
and writes from several threads never interleave.
"""

from __future__ import annotations

import select
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Control bytes, supervisor -> task process.
STOP = b"S"  # stop claiming, finish running tasks within the shutdown timeout
FORCE = b"F"  # give every task back now and exit

# Exit codes of a task process, read by the supervisor.
EXIT_OK = 0  # stopped on request, or drained in burst mode
EXIT_RECYCLE = 75  # reached --max-tasks-per-child or --max-memory-per-child: replace me
EXIT_SETUP_FAILED = 78  # configuration error: restarting would fail again


@dataclass
class Counts:
    """What a worker process did; sent to the supervisor as one status line."""

    succeeded: int = 0
    failed: int = 0
    released: int = 0  # given back to READY without an outcome
    stale: int = 0  # outcomes dropped because a newer attempt holds the task
    retried: int = 0  # failed attempts that will be tried again
    cancelled: int = 0

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.released + other.released,
            self.stale + other.stale,
            self.retried + other.retried,
            self.cancelled + other.cancelled,
        )

    def line(self) -> bytes:
        return (
            f"stats {self.succeeded} {self.failed} {self.released} {self.stale} "
            f"{self.retried} {self.cancelled}\n"
        ).encode()

    @classmethod
    def parse(cls, line: bytes) -> Counts | None:
        parts = line.split()
        if len(parts) != 7 or parts[0] != b"stats":
            return None
        try:
            return cls(*(int(p) for p in parts[1:]))
        except ValueError:
            return None


def task_line(kind: str, task_id: int, attempt: int, seconds: float | None = None) -> bytes:
    """The line of a ``TaskEvent``, made without one: a worker sends three per task."""
    tail = b"-" if seconds is None else repr(float(seconds)).encode()
    return b"%s %d %d %s\n" % (kind.encode(), task_id, attempt, tail)


def writes(lines: Iterable[bytes]) -> Iterator[bytes]:
    """``lines`` joined into as few writes as fit in PIPE_BUF each."""
    chunk = b""
    for line in lines:
        if chunk and len(chunk) + len(line) > select.PIPE_BUF:
            yield chunk
            chunk = b""
        chunk += line
    if chunk:
        yield chunk


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A task line: ``start``/``end`` of an attempt, ``done`` (its code succeeded
    and its outcome waits to be written), or ``kill`` (stop it by force)."""

    kind: str  # "start", "done", "end" or "kill"
    task_id: int
    attempt: int
    # start: the attempt's timeout in seconds (None: none); kill: seconds of grace left.
    seconds: float | None = None

    def line(self) -> bytes:
        return task_line(self.kind, self.task_id, self.attempt, self.seconds)

    @classmethod
    def parse(cls, line: bytes) -> TaskEvent | None:
        parts = line.split()
        if len(parts) != 4 or parts[0] not in (b"start", b"done", b"end", b"kill"):
            return None
        try:
            seconds = None if parts[3] == b"-" else float(parts[3])
            return cls(parts[0].decode(), int(parts[1]), int(parts[2]), seconds)
        except ValueError:
            return None
