"""Progress reported by running tasks: validated in the task's thread, kept in
memory, written by the worker's dispatcher.

A task that takes the context calls ``context.report_progress(current, total,
message)`` as often as it likes: the call only replaces the latest report of
its attempt in a :class:`ProgressBoard` (a dict under a lock) and returns at
once, in sync and async tasks alike. The dispatcher, which owns the worker's
database connection, writes the reports that changed at most once every
``OPTIONS["PROGRESS_INTERVAL"]`` seconds, all of them in one statement, and
flushes a task's last report before it writes the task's outcome.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from offload.exceptions import InvalidProgress
from offload.limits import MAX_EXACT_PROGRESS_INT, MAX_PROGRESS_MESSAGE_LENGTH

# Longer messages are cut to the width of their column.
MAX_MESSAGE_LENGTH = MAX_PROGRESS_MESSAGE_LENGTH


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a task got: ``current`` of ``total`` (None: unknown), and a message.

    ``reported_at`` is when a worker wrote it (database clock); None until then.
    """

    current: int | float
    total: int | float | None = None
    message: str = ""
    reported_at: datetime | None = None

    @property
    def fraction(self) -> float | None:
        """``current / total`` between 0 and 1, or None without a (non-zero) total."""
        if not self.total:
            return None
        return min(max(self.current / self.total, 0.0), 1.0)


def _number(name: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidProgress(f"Progress {name} must be a number, got {type(value).__name__}.")
    if isinstance(value, int):
        if value < 0:
            raise InvalidProgress(f"Progress {name} must be a finite number >= 0, got {value!r}.")
        # Stored in a double column: a larger int would read back as another.
        if value > MAX_EXACT_PROGRESS_INT:
            raise InvalidProgress(
                f"Progress {name} must be at most 2**53 ({MAX_EXACT_PROGRESS_INT:,}) as an "
                f"int, got one of {value.bit_length()} bits; pass a larger number as a float."
            )
        return int(value)  # an int subclass (an IntEnum, say) is stored as its value
    if not math.isfinite(value) or value < 0:
        raise InvalidProgress(f"Progress {name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def stored_number(value: float) -> int | float:
    """A progress number as read from its column: a whole number as an int.

    The columns are doubles on every database, so an int a task reported reads
    back as a float; it is turned back into the int. A whole float (``2.0``)
    therefore also reads back as an int, which compares equal to it.
    """
    if value.is_integer() and abs(value) <= MAX_EXACT_PROGRESS_INT:
        return int(value)
    return value


def make_progress(current: Any, total: Any = None, message: Any = "") -> Progress:
    """Check a report and return it; raise ``InvalidProgress`` if it makes no sense.

    ``message`` is cut to ``MAX_MESSAGE_LENGTH`` characters.
    """
    now = _number("current", current)
    whole = None if total is None else _number("total", total)
    if whole is not None and now > whole:
        raise InvalidProgress(f"Progress current ({current!r}) is above total ({total!r}).")
    if not isinstance(message, str):
        raise InvalidProgress(f"Progress message must be a str, got {type(message).__name__}.")
    return Progress(now, whole, message[:MAX_MESSAGE_LENGTH])


# One attempt of one task: (task id, attempt).
AttemptKey = tuple[int, int]


class ProgressBoard:
    """The latest unwritten report of each running attempt, shared between threads.

    ``report`` is called from task threads and the event loop; ``take`` and
    ``take_all`` from the dispatcher. ``on_first_change`` is called when the
    board goes from nothing to write to something (so at most once between two
    writes), to wake the dispatcher.
    """

    def __init__(self, on_first_change: Callable[[], None] | None = None) -> None:
        self._pending: dict[AttemptKey, Progress] = {}
        self._lock = threading.Lock()
        self._on_first_change = on_first_change

    def report(self, key: AttemptKey, progress: Progress) -> None:
        with self._lock:
            first = not self._pending
            self._pending[key] = progress
        if first and self._on_first_change is not None:
            self._on_first_change()

    def __bool__(self) -> bool:
        return bool(self._pending)

    def take_all(self) -> dict[AttemptKey, Progress]:
        with self._lock:
            taken, self._pending = self._pending, {}
        return taken

    def take(self, keys: Iterable[AttemptKey]) -> dict[AttemptKey, Progress]:
        with self._lock:
            return {key: self._pending.pop(key) for key in keys if key in self._pending}

    def put_back(self, taken: dict[AttemptKey, Progress]) -> None:
        """Return reports whose write failed, unless a newer one came meanwhile."""
        with self._lock:
            for key, progress in taken.items():
                self._pending.setdefault(key, progress)
