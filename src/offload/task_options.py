"""Checks of a task's priority and ``run_after`` that Django's own leave to the database.

Django's ``validate_task`` compares the priority with its bounds, which ``True``
passes (it is 1) and a string or NaN turns into a raw ``TypeError`` or
``ValueError``; it takes any aware ``run_after``, even one that overflows when
converted to UTC for the INSERT. Each of these is refused here, before
Django's checks run, so every database sees the same values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from math import isfinite
from typing import Any

from django.tasks import Task


def option_problem(task: Task[..., Any]) -> str | None:
    """Why ``task``'s priority or ``run_after`` cannot be stored, or None."""
    priority = task.priority
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        return (
            f"priority must be a whole number between -100 and 100, got "
            f"{type(priority).__name__} {priority!r:.100}."
        )
    if isinstance(priority, float) and not isfinite(priority):
        return f"priority must be a whole number between -100 and 100, got {priority!r}."
    run_after = task.run_after
    if run_after is None:
        return None
    if not isinstance(run_after, datetime):
        return f"run_after must be a datetime, got {type(run_after).__name__} {run_after!r:.100}."
    if run_after.utcoffset() is not None:
        try:
            run_after.astimezone(UTC)
        except OverflowError:
            return f"run_after {run_after.isoformat()} is out of range once converted to UTC."
    return None
