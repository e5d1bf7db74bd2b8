"""The two systems measured: offload, and django-tasks-db as the peer to compare with.

Both are configured in ``bench.settings`` on the same database (``TASKS``
"default" is offload, "peer" is django-tasks-db), and both run their own
worker command. Everything a workload needs from a system is here: how to
enqueue, how to start its workers at a given concurrency, and how to read
back what happened from its table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Min, QuerySet
from django.tasks import Task


@dataclass(frozen=True)
class Concurrency:
    """How many worker processes, and for offload how many threads or async slots each."""

    processes: int = 1
    threads: int = 1
    async_slots: int | None = None

    @property
    def label(self) -> str:
        return f"{self.processes}x{self.threads}"


class System:
    name: str
    label: str

    def task(self, task: Task[Any, Any]) -> Task[Any, Any]:
        raise NotImplementedError

    def enqueue_many(self, task: Task[Any, Any], calls: Sequence[list[Any]]) -> bool:
        """One INSERT for many tasks; False where the system has no such API."""
        return False

    def worker_commands(self, concurrency: Concurrency | None, *, burst: bool) -> list[list[str]]:
        raise NotImplementedError

    def ideal_slots(self, concurrency: Concurrency, *, is_async: bool) -> int:
        """Tasks the workers run at once: ideal rate of 20 ms sleeps is this x 50/s."""
        raise NotImplementedError

    def rows(self) -> QuerySet[Any]:
        raise NotImplementedError

    @property
    def table(self) -> str:
        return str(self.rows().model._meta.db_table)

    def empty(self) -> None:
        """Start on an empty table, so no measurement inherits another's rows."""
        # TRUNCATE, not DELETE: on PostgreSQL deleted rows stay as dead tuples
        # that the next claims would scan until autovacuum runs.
        verb = "DELETE FROM" if connection.vendor == "sqlite" else "TRUNCATE TABLE"
        with connection.cursor() as cursor:
            cursor.execute(f"{verb} {self.table}")

    def statuses(self, ids: Sequence[Any] | None = None) -> dict[str, int]:
        rows = self.rows() if ids is None else self.rows().filter(pk__in=ids)
        counted = rows.values("status").annotate(n=Count("pk")).order_by("status")
        return {row["status"]: row["n"] for row in counted}

    def finished(self, ids: Sequence[Any]) -> bool:
        done = self.rows().filter(pk__in=ids, status__in=["SUCCESSFUL", "FAILED"])
        return done.count() == len(ids)

    def span(self) -> tuple[datetime | None, datetime | None]:
        """First start and last finish of the table's tasks."""
        found = self.rows().aggregate(first=Min("started_at"), last=Max("finished_at"))
        return found["first"], found["last"]

    def waits_ms(self, ids: Sequence[Any]) -> list[float]:
        """Enqueue-to-start time of each task in ``ids``, sorted."""
        rows = self.rows().filter(pk__in=ids, started_at__isnull=False)
        return sorted(
            (started - enqueued).total_seconds() * 1000
            for enqueued, started in rows.values_list("enqueued_at", "started_at")
        )


class Offload(System):
    name = "offload"
    label = "offload"

    def task(self, task: Task[Any, Any]) -> Task[Any, Any]:
        return task  # bench tasks use the default backend, offload's

    def enqueue_many(self, task: Task[Any, Any], calls: Sequence[list[Any]]) -> bool:
        import offload

        offload.enqueue_many(task, [(args, {}) for args in calls])
        return True

    def worker_commands(self, concurrency: Concurrency | None, *, burst: bool) -> list[list[str]]:
        command = [sys.executable, "-m", "django", "offload", "-v", "0", "worker"]
        if concurrency is not None:
            command += ["--processes", str(concurrency.processes),
                        "--threads", str(concurrency.threads)]  # fmt: skip
            if concurrency.async_slots:
                command += ["--async-concurrency", str(concurrency.async_slots)]
        return [command + (["--burst"] if burst else [])]

    def ideal_slots(self, concurrency: Concurrency, *, is_async: bool) -> int:
        per_process = concurrency.async_slots if is_async else concurrency.threads
        return concurrency.processes * (per_process or 1)

    def rows(self) -> QuerySet[Any]:
        from offload.models import TaskRecord

        return TaskRecord.objects.all()


class TasksDb(System):
    """django-tasks-db: its ``db_worker`` runs one task at a time per process."""

    name = "peer"
    label = "django-tasks-db"

    def task(self, task: Task[Any, Any]) -> Task[Any, Any]:
        return task.using(backend="peer")

    def worker_commands(self, concurrency: Concurrency | None, *, burst: bool) -> list[list[str]]:
        # Its defaults otherwise (1 s --interval when idle), as a user runs it;
        # no start-up delay, which would only add a random second to the drains.
        command = [sys.executable, "-m", "django", "db_worker", "-v", "0", "--backend", "peer",
                   "--no-startup-delay", "--no-reload"]  # fmt: skip
        if burst:
            command.append("--batch")
        processes = concurrency.processes if concurrency else 1
        return [list(command) for _ in range(processes)]

    def ideal_slots(self, concurrency: Concurrency, *, is_async: bool) -> int:
        return concurrency.processes

    def rows(self) -> QuerySet[Any]:
        from django_tasks_db.models import DBTaskResult

        return DBTaskResult.objects.all()


SYSTEMS: tuple[System, ...] = (Offload(), TasksDb())
