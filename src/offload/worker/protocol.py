"""What the supervisor and its task processes say to each other.

Each task process gets two pipes. On the control pipe the supervisor writes
single bytes; end of file means the supervisor is gone (even when it was
killed with SIGKILL), and the process gives its tasks back and exits, so no
task process outlives its supervisor. On the status pipe the process writes
short text lines the supervisor aggregates for progress and the final summary.
"""

from __future__ import annotations

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

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.released + other.released,
            self.stale + other.stale,
        )

    def line(self) -> bytes:
        return f"stats {self.succeeded} {self.failed} {self.released} {self.stale}\n".encode()

    @classmethod
    def parse(cls, line: bytes) -> Counts | None:
        parts = line.split()
        if len(parts) != 5 or parts[0] != b"stats":
            return None
        try:
            return cls(*(int(p) for p in parts[1:]))
        except ValueError:
            return None
