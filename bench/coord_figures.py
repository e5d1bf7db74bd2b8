"""The figures of the coordination workloads (W8-W10), from times read back.

W8 checks that no concurrency key ever had more tasks running than its limit,
W9 how fast a rate-limited key's tasks started and how many claims or starts
any one window held, W10 how long a workflow's callback waited for its last
member. Times are seconds on one clock (the host's monotonic clock, or the
database's as datetimes turned into seconds); which one is the caller's to say.

Pure functions, so that tests/unit can check them without a server.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals ``(start, end)`` that overlap at any moment.

    An interval that ends at the very moment another starts does not overlap
    it: a task promoted by another's end starts at or after that end, and on a
    clock of whole milliseconds (SQLite) the two may read the same. An
    interval of no length (a task claimed and finished within one tick) still
    counts at its moment.
    """
    # At one moment: the ends of intervals begun before it, then the starts,
    # then the ends of intervals of no length.
    events: list[tuple[float, int, int]] = []
    for start, end in intervals:
        if end < start:
            raise ValueError(f"an interval ends before it starts: {start} > {end}")
        events += [(start, 1, 1), (end, 2 if end == start else 0, -1)]
    running = most = 0
    for _, _, change in sorted(events):
        running += change
        most = max(most, running)
    return most


def most_at_once_per_key(rows: Iterable[tuple[str, float, float]]) -> dict[str, int]:
    """``most_at_once`` for each key of ``(key, start, end)`` rows."""
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, start, end in rows:
        by_key[key].append((start, end))
    return {key: most_at_once(spans) for key, spans in sorted(by_key.items())}


def handover_gaps(rows: Iterable[tuple[str, float, float]]) -> list[float]:
    """For each ``(key, claimed, finished)`` task claimed after one of its key
    had finished, the seconds since the latest such finish, sorted.

    A task blocked on its key is let in by the end of another: this is how
    long the slot that end freed stood empty before the next task of the key
    was claimed (the promotion, the wake-up, the claim). The key's first
    tasks, claimed before any of it finished, are left out.
    """
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, claimed, finished in rows:
        by_key[key].append((claimed, finished))
    gaps: list[float] = []
    for spans in by_key.values():
        ends = sorted(finished for _, finished in spans)
        for claimed, _ in spans:
            before = bisect.bisect_right(ends, claimed)
            if before:
                gaps.append(claimed - ends[before - 1])
    return sorted(gaps)


def most_in_window(times: Iterable[float], width: float) -> int:
    """The most of ``times`` in any half-open window ``[t, t + width)``.

    Half-open because a rate limit of N per ``width`` lets a slot be used
    again once the claim that held it is exactly ``width`` old.
    """
    if not width > 0:
        raise ValueError(f"a window is wider than 0, not {width}")
    ordered = sorted(times)
    most = first = 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - width:
            first += 1
        most = max(most, last - first + 1)
    return most


def rate_after_first_window(times: Sequence[float], count: int) -> float | None:
    """Starts per second after the first ``count``, which a rate limit lets go at once.

    A rate of ``count`` per period lets the first ``count`` tasks start at
    once; every start after them waits for a slot to free, so the rate the
    limit holds is the ``len(times) - count`` later starts over the time
    from the first start to the last. None when no start came after the first
    ``count``, or they all came at one moment.
    """
    if len(times) <= count:
        return None
    span = max(times) - min(times)
    return (len(times) - count) / span if span > 0 else None


def callback_wait(members: Mapping[int, float], callback: float) -> float:
    """Seconds from the last member's time to the callback's (negative: it started first)."""
    if not members:
        raise ValueError("no member")
    return callback - max(members.values())


def pct(part: float | None, whole: float | None) -> float | None:
    """``part`` as a percentage of ``whole``; None where either is missing or ``whole`` is 0."""
    if part is None or not whole:
        return None
    return 100 * part / whole
