"""Bounded reads for operators: queue depths, the oldest due task, recent
failures, worker rows and what each runs. The admin's queue page, ``offload
status`` and ``offload health`` read through here.

None of these writes or needs the claim's SQL, so they use the ORM on the
store's alias. Each is bounded by an index or a LIMIT, so that a probe that runs
every few seconds stays cheap with a million rows in the table:

* the oldest due READY task is found by walking the distinct priorities of the
  READY rows (one index seek each, at most the 201 priorities there are) and,
  for each, the first due row in the claim index's own order: never a sort or an
  aggregate over the backlog;
* failures are counted through the ``finished_at`` index, over the window only,
  and stop at a cap;
* worker rows are read newest heartbeat first, at most ``limit`` of them;
* a workflow's tasks and edges are read through ``offload_task_workflow_idx``
  and the dependency table's two indexes, at most ``limit`` rows, and counted
  up to a cap.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.db.models.functions import Upper

from offload.models import Queue, Schedule, TaskDependency, TaskRecord, WorkerRecord
from offload.states import State

# Priorities run from -100 to 100: the walk below never takes more steps.
PRIORITY_LEVELS = 201


@dataclass(frozen=True)
class QueueDepth:
    name: str
    ready: int
    due: int
    running: int
    oldest_due: datetime | None
    paused_at: datetime | None
    paused_by: str
    # Tasks of the queue waiting on a concurrency limit (BLOCKED: in no
    # queue's claim until promoted, see store.gate).
    blocked: int = 0
    # Tasks of the queue waiting on upstream tasks of a workflow (WAITING:
    # in no queue's claim until their last upstream ends, see
    # store.dependencies).
    waiting: int = 0


def _count_by_queue(tasks: QuerySet[TaskRecord], status: str) -> dict[str, int]:
    rows = tasks.filter(status=status).values("queue_name").annotate(n=Count("id"))
    return dict(rows.values_list("queue_name", "n"))


def queue_depths(using: str, known: Iterable[str], now: datetime) -> list[QueueDepth]:
    """Every queue in ``known``, with READY, RUNNING, BLOCKED or WAITING
    tasks, or paused, with its numbers: grouped reads of the claim index over those rows
    only, never the finished ones."""
    tasks = TaskRecord.objects.using(using).order_by()
    ready = dict(
        tasks.filter(status=State.READY)
        .values("queue_name")
        .annotate(n=Count("id"))
        .values_list("queue_name", "n")
    )
    due = {
        row["queue_name"]: row
        for row in tasks.filter(status=State.READY, available_at__lte=now)
        .values("queue_name")
        .annotate(n=Count("id"), oldest=Min("available_at"))
    }
    running = dict(
        tasks.filter(status=State.RUNNING)
        .values("queue_name")
        .annotate(n=Count("id"))
        .values_list("queue_name", "n")
    )
    blocked = _count_by_queue(tasks, State.BLOCKED)
    waiting = _count_by_queue(tasks, State.WAITING)
    paused = {q.name: q for q in Queue.objects.using(using).filter(paused_at__isnull=False)}
    names = set(known) | set(ready) | set(running) | set(paused) | set(blocked) | set(waiting)
    return [
        QueueDepth(
            name=name,
            ready=ready.get(name, 0),
            due=due[name]["n"] if name in due else 0,
            running=running.get(name, 0),
            oldest_due=due[name]["oldest"] if name in due else None,
            paused_at=paused[name].paused_at if name in paused else None,
            paused_by=paused[name].paused_by if name in paused else "",
            blocked=blocked.get(name, 0),
            waiting=waiting.get(name, 0),
        )
        for name in sorted(names)
    ]


def _oldest_due_in(ready: QuerySet[TaskRecord], now: datetime) -> datetime | None:
    """The oldest ``available_at`` of the due rows of ``ready`` (READY rows, maybe
    of one queue), by a walk over their distinct priorities, highest first."""
    oldest: datetime | None = None
    level: int | None = None
    for _ in range(PRIORITY_LEVELS):
        above = ready if level is None else ready.filter(priority__lt=level)
        level = above.order_by("-priority").values_list("priority", flat=True).first()
        if level is None:
            break
        first = (
            ready.filter(priority=level, available_at__lte=now)
            .order_by("available_at")
            .values_list("available_at", flat=True)
            .first()
        )
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    return oldest


def oldest_due(using: str, now: datetime, queues: Sequence[str] | None = None) -> datetime | None:
    """When the oldest READY task that is due at ``now`` became due, in ``queues``
    (None: every queue); None when no task is due."""
    ready = TaskRecord.objects.using(using).filter(status=State.READY)
    if queues is None:
        return _oldest_due_in(ready, now)
    found = [_oldest_due_in(ready.filter(queue_name=name), now) for name in queues]
    return min((when for when in found if when is not None), default=None)


def key_holders(row: TaskRecord) -> int:
    """How many tasks hold the concurrency key of ``row`` (READY or RUNNING),
    read through the gate's index (see ``store.gate``)."""
    return (
        TaskRecord.objects.using(row._state.db)
        .filter(
            backend=row.backend,
            concurrency_key=row.concurrency_key,
            status__in=(State.READY, State.RUNNING),
        )
        .count()
    )


def failures_since(using: str, since: datetime, cap: int) -> int:
    """Tasks that ended FAILED since ``since``, counted up to ``cap`` (a count of
    ``cap`` means "at least")."""
    # Read through the finished_at index, newest first, so the cost follows the
    # window, never the table. Without the order, PostgreSQL may bet on a
    # sequential scan finding ``cap`` failures early, and read the whole table
    # when failures are rare; with it, it walks the index back from now and
    # stops at ``cap``. The status is compared through a function, a term no
    # index serves, on every engine: SQLite without ANALYZE would otherwise
    # take the claim index's status range (every FAILED task ever, then a sort).
    failed = (
        TaskRecord.objects.using(using)
        .filter(finished_at__gte=since)
        .alias(state=Upper("status"))
        .filter(state=State.FAILED)
    )
    return len(failed.order_by("-finished_at").values_list("id", flat=True)[:cap])


def workers(using: str, limit: int) -> list[WorkerRecord]:
    """Worker rows, the newest heartbeat first, at most ``limit``."""
    return list(WorkerRecord.objects.using(using).order_by("-heartbeat_at", "id")[:limit])


def live_worker_labels(using: str, backend: str, since: datetime, limit: int) -> list[str]:
    """The queue labels (see :func:`serves`) of ``backend``'s workers whose
    heartbeat is at or after ``since``, through the ``heartbeat_at`` index."""
    rows = WorkerRecord.objects.using(using).filter(heartbeat_at__gte=since, backend=backend)
    return list(rows.order_by("-heartbeat_at").values_list("queues", flat=True)[:limit])


def serves(label: str, queue: str) -> bool:
    """Whether a worker whose row says ``label`` ("a,b", or "*" with ",-c" per
    excluded queue) claims from ``queue``."""
    parts = label.split(",")
    if parts[0] == "*":
        return f"-{queue}" not in parts[1:]
    return queue in parts


def current_tasks(using: str, worker_ids: Sequence[str], limit: int) -> dict[str, list[TaskRecord]]:
    """The RUNNING tasks each of ``worker_ids`` holds, at most ``limit`` in all."""
    if not worker_ids:
        return {}
    rows = (
        TaskRecord.objects.using(using)
        .filter(status=State.RUNNING, lease_owner__in=list(worker_ids))
        .only("id", "task_path", "lease_owner", "attempt", "last_attempted_at")
        .order_by()[:limit]
    )
    found: dict[str, list[TaskRecord]] = {}
    for row in rows:
        found.setdefault(row.lease_owner or "", []).append(row)
    return found


def schedules(using: str, backend: str, limit: int) -> list[Schedule]:
    """The backend's schedules, by name, at most ``limit``."""
    rows = Schedule.objects.using(using).filter(backend=backend).order_by("name")
    return list(rows[:limit])


# -- workflows: a task's edges and a workflow's tasks, for the admin's task page --


@dataclass(frozen=True)
class Linked:
    """A task at one end of a workflow's edge: DELETED for one no longer in
    the table (pruned, or deleted by an operator)."""

    id: int
    status: str
    task_path: str = ""


@dataclass(frozen=True)
class Some:
    """At most ``limit`` of something, in order, and how many there are,
    counted up to a cap (``capped``: at least ``total``)."""

    items: list[Linked]
    total: int
    capped: bool = False


def _capped_count(rows: QuerySet[Any], shown: int, limit: int, cap: int) -> tuple[int, bool]:
    if shown < limit:
        return shown, False  # all of them were read
    total = rows.order_by()[: cap + 1].count()
    return min(total, cap), total > cap


def _linked(using: str, ids: Sequence[int]) -> list[Linked]:
    """``ids`` in their order, each with its state and path (one read)."""
    found = {
        row.pk: row
        for row in TaskRecord.objects.using(using)
        .filter(pk__in=list(ids))
        .only("id", "status", "task_path")
    }
    return [
        Linked(i, found[i].status, found[i].task_path) if i in found else Linked(i, "DELETED")
        for i in ids
    ]


def upstream_tasks(row: TaskRecord, limit: int, cap: int) -> Some:
    """The first ``limit`` tasks ``row`` waits for (or waited for), in the
    order it receives their results, through the (task_id, upstream_id) index."""
    using = row._state.db or "default"
    edges = TaskDependency.objects.using(using).filter(task_id=row.pk)
    ids = list(edges.order_by("position").values_list("upstream_id", flat=True)[:limit])
    total, capped = _capped_count(edges, len(ids), limit, cap)
    return Some(_linked(using, ids), total, capped)


def dependent_tasks(row: TaskRecord, limit: int, cap: int) -> Some:
    """The first ``limit`` tasks that wait for (or waited for) ``row``, by
    id, through the upstream_id index."""
    using = row._state.db or "default"
    edges = TaskDependency.objects.using(using).filter(upstream_id=row.pk)
    ids = list(edges.order_by("task_id").values_list("task_id", flat=True)[:limit])
    total, capped = _capped_count(edges, len(ids), limit, cap)
    return Some(_linked(using, ids), total, capped)


def is_upstream(row: TaskRecord) -> bool:
    """Whether some task waits for (or waited for) ``row``: one index seek."""
    using = row._state.db or "default"
    return TaskDependency.objects.using(using).filter(upstream_id=row.pk).exists()


def workflow_tasks(using: str, workflow_id: int, limit: int, cap: int) -> Some:
    """The first ``limit`` tasks of a workflow, in the order it was built
    (by id), through ``offload_task_workflow_idx``."""
    rows = TaskRecord.objects.using(using).filter(workflow_id=workflow_id)
    found = list(rows.order_by("id").only("id", "status", "task_path")[:limit])
    items = [Linked(row.pk, row.status, row.task_path) for row in found]
    total, capped = _capped_count(rows, len(items), limit, cap)
    return Some(items, total, capped)


def upstream_ids(using: str, task_ids: Sequence[int], limit: int) -> dict[int, list[int]]:
    """What each of ``task_ids`` waits for, in order: at most ``limit`` edges
    in all (the first tasks' first)."""
    if not task_ids:
        return {}
    edges = (
        TaskDependency.objects.using(using)
        .filter(task_id__in=list(task_ids))
        .order_by("task_id", "position")
        .values_list("task_id", "upstream_id")[:limit]
    )
    found: dict[int, list[int]] = {}
    for task_id, upstream_id in edges:
        found.setdefault(task_id, []).append(upstream_id)
    return found
