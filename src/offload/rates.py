"""Rate limits: what a task declares about its rate key and rate, checked
once, and the key of one call.

A task with a rate key starts at most ``count`` times per ``period`` seconds
with every other task of its backend that has the same key, on every worker
of every host (docs/coordination.md "Rate limits"). The database enforces it
(see ``store.rate_gate``): a task is let into its queue (READY) only while the
key's READY tasks plus its tasks claimed within the last period are fewer than
``count``; else it waits as BLOCKED until the worker's rate promoter (an
elected role, ``worker.rate_promoter``) lets it in when a slot of the window
frees.

A rate is written ``(count, seconds)`` or ``"N/s"``, ``"N/m"``, ``"N/h"``
(N starts per second, minute or hour).

A leaf module: it imports only other leaves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offload import task_keys
from offload.limits import MAX_RATE_COUNT, MAX_RATE_KEY_LENGTH, MAX_RATE_PERIOD, MIN_RATE_PERIOD

# A key given as a string, or a callable that builds it from the call's
# arguments (``key(*args, **kwargs)``), returning a string or None (no limit).
RateKey = str | Callable[..., str | None]
# A rate as declared: (count, seconds) or "N/s", "N/m", "N/h".
Rate = tuple[int, float] | str

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

_FORMS = '(count, seconds) or a string "N/s", "N/m" or "N/h"'


@dataclass(frozen=True, slots=True)
class RateOf:
    """The rate key of one call and its rate, as the store writes them."""

    key: str
    count: int
    period: float


def parse_rate(rate: object) -> tuple[int, float] | str:
    """``rate`` as (count, seconds), or why it cannot be a rate."""
    if isinstance(rate, str):
        count_text, slash, unit = rate.strip().partition("/")
        if not slash or unit.strip() not in _UNITS or not count_text.strip().isdigit():
            return f"rate_limit must be {_FORMS}, got {rate!r:.100}."
        count: object = int(count_text)
        period: object = _UNITS[unit.strip()]
    elif isinstance(rate, (tuple, list)) and len(rate) == 2:
        count, period = rate
    else:
        return f"rate_limit must be {_FORMS}, got {rate!r:.100}."
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RATE_COUNT:
        return (
            f"rate_limit's count must be a whole number from 1 to {MAX_RATE_COUNT}, "
            f"got {count!r:.100}."
        )
    if (
        isinstance(period, bool)
        or not isinstance(period, (int, float))
        or not math.isfinite(period)
        or not MIN_RATE_PERIOD <= period <= MAX_RATE_PERIOD
    ):
        return (
            f"rate_limit's period must be a number of seconds from {MIN_RATE_PERIOD} to "
            f"{MAX_RATE_PERIOD:g}, got {period!r:.100}."
        )
    return count, float(period)


def rate_problems(where: str, key: object, rate: object, others: Mapping[str, object]) -> list[str]:
    """What is wrong with a task's rate options (empty: nothing). ``others``:
    the task's unique and concurrency keys, which a rate key cannot join."""
    problems = []
    if key is not None and not callable(key):
        problem = task_keys.key_problem("rate_key", key, MAX_RATE_KEY_LENGTH)
        if problem:
            problems.append(f"{where} {problem}")
    if rate is not None:
        parsed = parse_rate(rate)
        if isinstance(parsed, str):
            problems.append(f"{where} {parsed}")
    if (key is None) != (rate is None):
        problems.append(
            f"{where} rate_key and rate_limit go together (the tasks counted, and how many "
            "may start per period)."
        )
    if key is not None:
        for option, value in others.items():
            if value is not None:
                problems.append(
                    f"{where} rate_key cannot be combined with {option} (a task waits on one "
                    "limit at a time; see docs/coordination.md)."
                )
    return problems


def rate_of_call(
    where: str,
    key: RateKey | None,
    rate: Rate | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> RateOf | None:
    """The rate key and rate of ``task(*args, **kwargs)``, or None for none.

    Raises ``InvalidTaskOptions`` if a callable key fails or returns something
    that cannot be a key (nothing is enqueued then).
    """
    if key is None or rate is None:
        return None
    found = task_keys.key_of_arguments(where, "rate_key", key, MAX_RATE_KEY_LENGTH, args, kwargs)
    if found is None:
        return None
    parsed = parse_rate(rate)
    if isinstance(parsed, str):  # checked when the task was declared
        raise ValueError(parsed)
    return RateOf(found, *parsed)
