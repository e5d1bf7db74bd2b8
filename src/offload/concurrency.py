"""Concurrency limits: what a task declares about its key and limit, checked
once, and the key of one call.

A task with a concurrency key runs at most ``concurrency_limit`` at a time
with every other task of its backend that has the same key, on every worker
of every host (docs/coordination.md). The database enforces it (see
``store.gate``): a task is let into its queue (READY) only while fewer than
the limit of its key's tasks are READY or RUNNING; else it waits as BLOCKED,
outside every queue, until a task of the key reaches a final state and
promotes the oldest blocked one.

A leaf module: it imports only other leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from offload import task_keys
from offload.limits import MAX_CONCURRENCY_KEY_LENGTH, MAX_CONCURRENCY_LIMIT

# The limit of a key given without one: one task of the key at a time.
DEFAULT_LIMIT = 1

# A key given as a string, or a callable that builds it from the call's
# arguments (``key(*args, **kwargs)``), returning a string or None (no limit).
ConcurrencyKey = str | Callable[..., str | None]


@dataclass(frozen=True, slots=True)
class LimitOf:
    """The concurrency key of one call and its limit, as the store writes them."""

    key: str
    limit: int


def limit_problems(where: str, key: object, limit: object) -> list[str]:
    """What is wrong with a task's concurrency options (empty: nothing)."""
    problems = []
    if key is not None and not callable(key):
        problem = key_problem(key)
        if problem:
            problems.append(f"{where} {problem}")
    if limit is not None:
        problem = limit_problem(limit)
        if problem:
            problems.append(f"{where} {problem}")
        elif key is None:
            problems.append(
                f"{where} concurrency_limit needs a concurrency_key (the tasks it counts)."
            )
    return problems


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be a concurrency key, or None."""
    return task_keys.key_problem("concurrency_key", key, MAX_CONCURRENCY_KEY_LENGTH)


def limit_problem(limit: object) -> str | None:
    """Why ``limit`` cannot be a concurrency limit, or None."""
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_CONCURRENCY_LIMIT
    ):
        return (
            f"concurrency_limit must be a whole number from 1 to {MAX_CONCURRENCY_LIMIT}, "
            f"got {limit!r:.100}."
        )
    return None


def limit_of_call(
    where: str,
    key: ConcurrencyKey | None,
    limit: int | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> LimitOf | None:
    """The concurrency key and limit of ``task(*args, **kwargs)``, or None for none.

    Raises ``InvalidTaskOptions`` if a callable key fails or returns something
    that cannot be a key (nothing is enqueued then).
    """
    if key is None:
        return None
    found = task_keys.key_of_arguments(
        where, "concurrency_key", key, MAX_CONCURRENCY_KEY_LENGTH, args, kwargs
    )
    if found is None:
        return None
    return LimitOf(found, DEFAULT_LIMIT if limit is None else limit)
