"""Latency on the caller's clock: from just before ``enqueue()`` to the task's first line.

The producer reads ``time.monotonic()`` just before it calls ``enqueue()``
(before the transaction that holds it, since the caller waits for the commit
too), and the task's first line reads the same clock and appends
``token seconds`` to a file (``bench.tasks.append_stamp``). On Linux
``time.monotonic()`` is CLOCK_MONOTONIC, one clock for every process of the
host, so the two readings subtract across processes. Only the host's clock is
used: no database clock, no clock of another machine.

Pure functions (and the paced schedule the producers follow), so that
tests/unit can check them without a server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

PERCENTILES = (50, 95, 99)


class StampError(Exception):
    """A stamp file that cannot be read: a truncated or foreign line."""


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of sorted samples: a value some task really had."""
    if not ordered:
        raise ValueError("no samples")
    if not 0 < pct <= 100:
        raise ValueError(f"a percentile is in (0, 100], not {pct}")
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and the slowest of some latencies (ms), in any order."""
    ordered = sorted(samples_ms)
    found = {f"p{pct}_ms": percentile(ordered, pct) for pct in PERCENTILES}
    found["max_ms"] = ordered[-1]
    return found


def append_stamp(path: str, token: int, now: float) -> None:
    """Append ``token now`` as one line to ``path``: every peer's task body ends here.

    One ``write`` on a file opened for appending, so lines from several
    processes never interleave (O_APPEND, and a line far under a page).
    """
    with open(path, "a") as file:
        file.write(f"{token} {now:.6f}\n")


def parse_stamps(text: str) -> dict[int, float]:
    """``token seconds`` per line, as the task bodies write them; the first per token.

    A token seen twice (a task run twice: at-least-once delivery) keeps its
    first start, which is what the caller waited for.
    """
    found: dict[int, float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, seconds = line.split()
            found.setdefault(int(token), float(seconds))
        except ValueError:
            raise StampError(f"line {number} is not 'token seconds': {line!r}") from None
    return found


def read_stamps(path: Path) -> dict[int, float]:
    """The stamps written to ``path`` so far (none if no task has written yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    # A line still being written has no newline yet: leave it for the next read.
    return parse_stamps(text[: text.rfind("\n") + 1])


def waits_ms(sent: Mapping[int, float], started: Mapping[int, float]) -> list[float]:
    """Each task's wait, start minus send (ms), sorted; tasks never started are left out."""
    return sorted((started[token] - at) * 1000 for token, at in sent.items() if token in started)


def start_rate(started: Mapping[int, float]) -> float | None:
    """Tasks started per second, first start to last (None for fewer than two)."""
    if len(started) < 2:
        return None
    span = max(started.values()) - min(started.values())
    return (len(started) - 1) / span if span > 0 else None


def paced(count: int, rate: float) -> Iterator[int]:
    """0 .. count-1, each yielded at its slot of a fixed schedule of ``rate`` per second.

    A fixed schedule, not a fixed pause: a slow enqueue does not push every
    later one back.
    """
    begun = time.perf_counter()
    for index in range(count):
        delay = begun + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield index
