"""Unique tasks: what a task declares about its key, checked once, and the key of one call.

A task with a unique key is enqueued only if no other task of its backend
holds the key (docs/coordination.md). The key is held, by scope:

- ``"waiting"`` (the default): while the task waits to run (READY, due or
  scheduled); its claim releases the key.
- ``"active"``: while it waits or runs; a final state (success, failure,
  cancellation) releases it. A retry keeps it.
- ``"period"``: for ``unique_for`` after the enqueue, whatever becomes of the
  task; the next enqueue of the key after that takes it over.

What an enqueue that finds the key held does, ``on_duplicate``:

- ``"existing"`` (the default): nothing is enqueued; the holder's result is returned.
- ``"replace"``: a holder still waiting to run takes the new arguments,
  priority and ``run_after``, and its result is returned; one already
  running (scope "active") or finished (scope "period") is left as it is
  and returned, as for "existing".
- ``"raise"``: ``DuplicateTask`` is raised, naming the holder.

The database enforces the key with a unique index, so however many
processes enqueue the same key at once, one task holds it.

A leaf module: it imports only other leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from math import isfinite
from typing import Any

from offload import task_keys
from offload.limits import MAX_UNIQUE_KEY_LENGTH

WAITING = "waiting"
ACTIVE = "active"
PERIOD = "period"
SCOPES = (WAITING, ACTIVE, PERIOD)

EXISTING = "existing"
REPLACE = "replace"
RAISE = "raise"
ON_DUPLICATE = (EXISTING, REPLACE, RAISE)

# A key given as a string, or a callable that builds it from the call's
# arguments (``key(*args, **kwargs)``), returning a string or None (no key).
UniqueKey = str | Callable[..., str | None]


@dataclass(frozen=True, slots=True)
class UniqueKeyOf:
    """The key of one call and how it is held, as the store writes it."""

    key: str
    scope: str
    # Seconds the key is held after the enqueue (scope "period"), else None.
    seconds: float | None
    on_duplicate: str


def unique_problems(
    where: str, key: object, scope: object, unique_for: object, on_duplicate: object
) -> list[str]:
    """What is wrong with a task's uniqueness options (empty: nothing)."""
    problems = []
    if key is not None and not callable(key):
        problem = key_problem(key)
        if problem:
            problems.append(f"{where} {problem}")
    if scope is not None and scope not in SCOPES:
        problems.append(f"{where} unique_scope must be one of {', '.join(SCOPES)}, got {scope!r}.")
    if unique_for is not None and seconds_of(unique_for) is None:
        problems.append(
            f"{where} unique_for must be a number of seconds > 0 or a timedelta, got "
            f"{unique_for!r:.100}."
        )
    if scope == PERIOD and unique_for is None:
        problems.append(f"{where} unique_scope 'period' needs unique_for (how long the key holds).")
    if scope in (WAITING, ACTIVE) and unique_for is not None:
        problems.append(f"{where} unique_for applies to unique_scope 'period', not {scope!r}.")
    if on_duplicate is not None and on_duplicate not in ON_DUPLICATE:
        problems.append(
            f"{where} on_duplicate must be one of {', '.join(ON_DUPLICATE)}, got {on_duplicate!r}."
        )
    return problems


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be a unique key, or None."""
    return task_keys.key_problem("unique_key", key, MAX_UNIQUE_KEY_LENGTH)


def seconds_of(value: object) -> float | None:
    """``unique_for`` in seconds, or None if it is not a duration > 0."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        return None
    return seconds if isfinite(seconds) and seconds > 0 else None


def key_of_call(
    where: str,
    key: UniqueKey | None,
    scope: str | None,
    unique_for: object,
    on_duplicate: str | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> UniqueKeyOf | None:
    """The key of ``task(*args, **kwargs)`` with its scope, or None for no key.

    Raises ``InvalidTaskOptions`` if a callable key fails or returns something
    that cannot be a key (nothing is enqueued then).
    """
    if key is None:
        return None
    found = task_keys.key_of_arguments(
        where, "unique_key", key, MAX_UNIQUE_KEY_LENGTH, args, kwargs
    )
    if found is None:
        return None
    held = scope or (PERIOD if unique_for is not None else WAITING)
    seconds = seconds_of(unique_for) if held == PERIOD else None
    return UniqueKeyOf(found, held, seconds, on_duplicate or EXISTING)
