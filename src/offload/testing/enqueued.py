"""What was enqueued: finding task rows by task, queue and arguments, and
saying what there is when an assertion about them fails."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.tasks import Task

from offload.models import TaskRecord
from offload.states import State

# Rows listed in a failed assertion's message; the count of the rest follows.
LISTED_ROWS = 20


def task_path(task: Task[..., Any] | str) -> str:
    """The import path a row stores for ``task`` (a Task or its path)."""
    return task if isinstance(task, str) else task.module_path


def _json(value: Any) -> Any:
    """``value`` as it comes back from a JSON column (tuples become lists)."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True, slots=True)
class Match:
    """What an ``enqueued`` call looks for; None: anything."""

    task: str | None = None
    queue: str | None = None
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    statuses: tuple[str, ...] | None = (State.READY,)

    @classmethod
    def of(
        cls,
        task: Task[..., Any] | str | None,
        queue: str | None,
        args: Sequence[Any] | None,
        kwargs: dict[str, Any] | None,
        status: str | Iterable[str] | None,
    ) -> Match:
        if isinstance(status, str):
            statuses: tuple[str, ...] | None = (status,)
        else:
            statuses = None if status is None else tuple(status)
        unknown = [s for s in statuses or () if s not in State.values]
        if unknown:
            raise ValueError(f"Unknown status {unknown[0]!r}; one of {', '.join(State.values)}.")
        return cls(
            None if task is None else task_path(task),
            queue,
            None if args is None else _json(list(args)),
            None if kwargs is None else _json(dict(kwargs)),
            statuses,
        )

    def describe(self) -> str:
        parts = [
            f"{name}={value!r}"
            for name, value in (
                ("task", self.task),
                ("queue", self.queue),
                ("args", self.args),
                ("kwargs", self.kwargs),
            )
            if value is not None
        ]
        parts.append(f"status in {list(self.statuses)}" if self.statuses else "any status")
        return ", ".join(parts)

    def rows(self, alias: str, database: str) -> QuerySet[TaskRecord]:
        """This match's status filter on one backend's rows, oldest first."""
        rows = TaskRecord.objects.using(database).filter(backend=alias).order_by("id")
        return rows if self.statuses is None else rows.filter(status__in=self.statuses)

    def find(self, alias: str, database: str) -> list[TaskRecord]:
        rows = self.rows(alias, database)
        if self.task is not None:
            rows = rows.filter(task_path=self.task)
        if self.queue is not None:
            rows = rows.filter(queue_name=self.queue)
        # Arguments are compared in Python: JSON equality differs by engine.
        return [
            row
            for row in rows
            if (self.args is None or row.args == self.args)
            and (self.kwargs is None or row.kwargs == self.kwargs)
        ]


def listing(rows: Sequence[TaskRecord], total: int) -> str:
    """Rows as indented lines, for an assertion's message."""
    if not rows:
        return "  (none)"
    lines = [
        f"  id={row.pk} {row.task_path} queue={row.queue_name!r} args={row.args!r} "
        f"kwargs={row.kwargs!r} status={row.status}"
        for row in rows
    ]
    if total > len(rows):
        lines.append(f"  ... and {total - len(rows)} more")
    return "\n".join(lines)


def what_there_is(match: Match, alias: str, database: str) -> str:
    """The rows of the match's statuses, for a failed assertion's message."""
    rows = match.rows(alias, database)
    total = rows.count()
    kind = f"status in {list(match.statuses)}" if match.statuses else "any status"
    return f"Enqueued on backend {alias!r} ({kind}):\n" + listing(list(rows[:LISTED_ROWS]), total)
