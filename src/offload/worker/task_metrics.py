"""What the task processes count for the supervisor's metrics port, and how
their counts travel.

Why deltas over the status pipe, not ``prometheus_client``'s multiprocess mode:
the supervisor already reads a status pipe from each process (see
``protocol``), and the processes come and go (recycled, restarted after a
crash) while the totals must keep counting. Multiprocess mode would need
``PROMETHEUS_MULTIPROC_DIR`` set in every task process's environment, which
turns every metric the project's own task code defines into a file-backed
one too, and a directory to clean up. Here each process counts in plain dicts
and, with its other figures (every ``REPORT_SECONDS``), sends what changed as
``metrics`` lines; the supervisor adds them to its totals (``Tally``) and
``worker.metrics_server`` hands those to ``prometheus_client`` as metric
families. Nothing is written in the exposition format by hand.

Cost on the task path: a task's start appends one tuple to a deque (atomic,
no lock) from its own thread; its outcome is counted by the dispatcher
thread, the only one that settles outcomes, so no lock at all. A process
killed outright loses at most its last ``REPORT_SECONDS`` of counts.
"""

from __future__ import annotations

import bisect
import collections
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from offload.store import ClaimedTask

# Upper bounds, in seconds, of the run and wait time histograms' buckets
# (+Inf is implied): from a few milliseconds to an hour.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
           300.0, 900.0, 3600.0)  # fmt: skip
COUNTERS = ("started", "succeeded", "failed", "retried", "cancelled")
PREFIX = b"metrics "
# The counter of each outcome, by ``reporting.label``.
OUTCOME_COUNTER = {
    "SUCCESSFUL": "succeeded", "FAILED": "failed", "RETRY": "retried", "CANCELLED": "cancelled",
}  # fmt: skip


@dataclass
class Histogram:
    """Observations per bucket (not cumulative; the last is +Inf) and their sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value

    def add(self, counts: list[int], total: float) -> None:
        for i, n in enumerate(counts[: len(self.counts)]):
            self.counts[i] += n
        self.total += total

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as ``HistogramMetricFamily`` takes them."""
        running, found = 0, []
        for bound, n in zip([*map(str, BUCKETS), "+Inf"], self.counts, strict=True):
            running += n
            found.append((bound, float(running)))
        return found


@dataclass
class Entry:
    """The counts of one (queue, task path)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    run: Histogram = field(default_factory=Histogram)
    wait: Histogram = field(default_factory=Histogram)


class Tally:
    """Counts by (queue, task path): a process's since its last report, or the
    supervisor's totals."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}

    def entry(self, queue: str, task: str) -> Entry:
        key = (queue, task)
        found = self.entries.get(key)
        if found is None:
            found = self.entries[key] = Entry()
        return found

    def lines(self) -> Iterator[bytes]:
        """One ``metrics`` line per (queue, task): each far below PIPE_BUF
        (a task path is at most MAX_NAME_LENGTH characters)."""
        for (queue, task), e in self.entries.items():
            payload = [queue, task, [e.counts[name] for name in COUNTERS],
                       e.run.counts, e.run.total, e.wait.counts, e.wait.total]  # fmt: skip
            yield PREFIX + json.dumps(payload, separators=(",", ":")).encode() + b"\n"

    def take(self, line: bytes) -> bool:
        """Add a ``metrics`` line's counts; False if it is not one (or is garbled)."""
        if not line.startswith(PREFIX):
            return False
        try:
            queue, task, counts, run, run_total, wait, wait_total = json.loads(line[len(PREFIX) :])
            e = self.entry(str(queue), str(task))
            for name, n in zip(COUNTERS, counts, strict=True):
                e.counts[name] += int(n)
            e.run.add([int(n) for n in run], float(run_total))
            e.wait.add([int(n) for n in wait], float(wait_total))
        except (ValueError, TypeError):
            return False
        return True


class TaskMetrics:
    """A task process's counts since its last report (see the module's docstring)."""

    def __init__(self) -> None:
        self._tally = Tally()
        # (queue, task, seconds waited) of each start, from the task threads.
        self._starts: collections.deque[tuple[str, str, float]] = collections.deque()

    def started(self, claimed: ClaimedTask) -> None:
        """In the task's thread, as its code begins: how long it waited since it
        was due (by the host's clock against the database's: a skew shows here)."""
        waited = max(time.time() - claimed.available_at.timestamp(), 0.0)
        self._starts.append((claimed.queue_name, claimed.task_path, waited))

    def settled(self, claimed: ClaimedTask, outcome: str, ran: float) -> None:
        """On the dispatcher thread: an attempt's written outcome ("succeeded",
        "failed", "retried" or "cancelled") and how long it ran."""
        e = self._tally.entry(claimed.queue_name, claimed.task_path)
        e.counts[outcome] += 1
        e.run.observe(ran)

    def lines(self) -> list[bytes]:
        """The counts since the last call, as ``metrics`` lines; then forgotten."""
        starts = self._starts
        while starts:
            queue, task, waited = starts.popleft()
            e = self._tally.entry(queue, task)
            e.counts["started"] += 1
            e.wait.observe(waited)
        found = list(self._tally.lines())
        self._tally = Tally()
        return found
