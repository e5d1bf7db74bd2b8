"""``OPTIONS["EMBEDDED"]``: the worker that runs inside web processes, as settings.

Pure: no database, no models. ``conf`` checks the dict when the backend is
built (so ``manage.py check`` reports a bad key); ``offload.embedded`` reads
it again, parsed, when a web process starts its worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from offload.limits import MAX_NAME_LENGTH
from offload.suggest import did_you_mean

# Inclusive bounds: a web process is not the place for a big pool, and more
# than a few dozen web processes each running a worker is `offload worker`'s job.
THREADS_BOUNDS = (1, 32)
PROCESSES_BOUNDS = (1, 64)
SHUTDOWN_TIMEOUT_BOUNDS = (0.0, 3600.0)


@dataclass(frozen=True)
class EmbeddedSettings:
    enabled: bool = False
    threads: int = 2
    async_concurrency: int = 20
    queues: tuple[str, ...] | None = None  # None: every queue
    processes: int = 1  # most web processes running a worker at once
    scheduler: bool = False
    shutdown_timeout: float = 10.0


# Key of OPTIONS["EMBEDDED"] -> (field, what it takes).
KEYS: dict[str, tuple[str, str]] = {
    "ENABLED": ("enabled", "True or False"),
    "THREADS": ("threads", f"a whole number from {THREADS_BOUNDS[0]} to {THREADS_BOUNDS[1]}"),
    "ASYNC_CONCURRENCY": ("async_concurrency", "a whole number from 1 to 1000"),
    "QUEUES": ("queues", "a list of queue names, or None for every queue"),
    "PROCESSES": (
        "processes",
        f"a whole number from {PROCESSES_BOUNDS[0]} to {PROCESSES_BOUNDS[1]}",
    ),
    "SCHEDULER": ("scheduler", "True or False"),
    "SHUTDOWN_TIMEOUT": ("shutdown_timeout", "seconds, from 0 to 3600"),
}


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _valid(key: str, value: object) -> bool:
    if key in ("ENABLED", "SCHEDULER"):
        return isinstance(value, bool)
    if key == "THREADS":
        return _whole(value, *THREADS_BOUNDS)
    if key == "ASYNC_CONCURRENCY":
        return _whole(value, 1, 1000)
    if key == "PROCESSES":
        return _whole(value, *PROCESSES_BOUNDS)
    if key == "SHUTDOWN_TIMEOUT":
        low, high = SHUTDOWN_TIMEOUT_BOUNDS
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
        )
    # QUEUES
    return value is None or (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(q, str) and 0 < len(q) <= MAX_NAME_LENGTH for q in value)
    )


def parse_embedded(raw: object) -> tuple[EmbeddedSettings, list[str]]:
    """The settings ``raw`` gives, and every problem with it (defaults stand in for bad keys)."""
    if not isinstance(raw, Mapping):
        return EmbeddedSettings(), [
            f"OPTIONS['EMBEDDED'] must be a dict, got {type(raw).__name__} {raw!r}."
        ]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        if key not in KEYS:
            hint = did_you_mean(key, KEYS)
            problems.append(f"Unknown key OPTIONS['EMBEDDED'][{key!r}].{hint}")
            continue
        name, takes = KEYS[key]
        if not _valid(key, value):
            problems.append(f"OPTIONS['EMBEDDED'][{key!r}] must be {takes}, got {value!r}.")
            continue
        if key == "QUEUES" and value is not None:
            value = tuple(value)
        elif key == "SHUTDOWN_TIMEOUT":
            value = float(value)
        values[name] = value
    return EmbeddedSettings(**values), problems
