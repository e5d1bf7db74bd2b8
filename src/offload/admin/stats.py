"""The dashboard's numbers, each from a bounded query.

* Counts of READY and RUNNING tasks stop at ``OPTIONS["ADMIN_COUNT_LIMIT"]``.
* Everything about finished tasks reads only the chosen window (an hour or a
  day) through the ``finished_at`` index, grouped by minute in the database.
* Queue depth over the window comes from the workers' per-minute samples
  (``offload_depth_sample``, see ``offload.worker.sampler``), read by minute.
* Percentiles of wait and run time come from the newest
  ``OPTIONS["DASHBOARD_SAMPLE_SIZE"]`` finished tasks of the window, read
  through the same index: engines differ in percentile functions, and a sample
  is plenty for p50 and p95.
* What holds back VACUUM (PostgreSQL) is read from three catalog views, never
  the task table (``offload.store.vacuum``).
"""

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncMinute
from django.utils import timezone

from offload.admin.options import admin_options, backend_named, database_of
from offload.admin.queues import QueueRow, queue_rows
from offload.models import DepthSample, TaskRecord
from offload.states import State
from offload.store import vacuum

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
CLOSED_AFTER = timedelta(minutes=2)
TOP_TASKS = 15


def percentile(sorted_values: list[float], share: float) -> float | None:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _summary(waits: Iterable[float], runs: Iterable[float]) -> dict[str, float | None]:
    wait, run = sorted(waits), sorted(runs)
    return {
        "wait_p50": percentile(wait, 0.5),
        "wait_p95": percentile(wait, 0.95),
        "run_p50": percentile(run, 0.5),
        "run_p95": percentile(run, 0.95),
    }


def _capped_count(using: str, status: str, limit: int) -> int:
    rows = TaskRecord.objects.using(using).filter(status=status).order_by()
    return int(rows[: limit + 1].count())


# How a task ended, by status: "finished" counts all three.
_ENDS: dict[str, str] = {
    State.SUCCESSFUL: "succeeded",
    State.FAILED: "failed",
    State.CANCELLED: "cancelled",
}


def _no_counts() -> dict[str, int]:
    return {"finished": 0, **dict.fromkeys(_ENDS.values(), 0)}


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _group_by_minute(using: str, since: datetime) -> dict[datetime, dict[str, int]]:
    per_minute: dict[datetime, dict[str, int]] = defaultdict(_no_counts)
    grouped = (
        TaskRecord.objects.using(using)
        .filter(finished_at__gte=since)
        .order_by()
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values("minute", "status")
        .annotate(n=Count("id"))
    )
    for row in grouped:
        bucket = per_minute[_minute(row["minute"])]
        bucket["finished"] += row["n"]
        if row["status"] in _ENDS:
            bucket[_ENDS[row["status"]]] += row["n"]
    return per_minute


def _per_minute(
    using: str, since: datetime, now: datetime, span: timedelta
) -> dict[datetime, dict[str, int]]:
    """Tasks finished and failed per minute since ``since``.

    A minute that has closed does not change, so its counts are kept in
    Django's cache (one entry per database, at most a day of minutes): a
    refresh reads only the last few minutes from the database, not the whole
    window again. With no cache configured, each refresh reads the window.
    Minutes count as closed two minutes after they end, leaving room for the
    database's clock to differ from ours.
    """
    # v2: the entries count each way a task ends, not only failures.
    key = f"offload:finished-per-minute:v2:{using}"
    closed_before = _minute(now) - CLOSED_AFTER
    minutes = [since + timedelta(minutes=i) for i in range(int(span.total_seconds() // 60) + 1)]
    known: dict[str, dict[str, int]] = cache.get(key) or {}
    missing = [m for m in minutes if m < closed_before and m.isoformat() not in known]
    read_from = min(missing) if missing else min(closed_before, minutes[-1])
    fresh = _group_by_minute(using, read_from)
    empty = _no_counts()
    found = {
        m: fresh.get(m, empty) if m >= read_from else known.get(m.isoformat(), empty)
        for m in minutes
    }
    # Keep the closed minutes of the longest window; drop older ones.
    oldest = (closed_before - max(WINDOWS.values())).isoformat()
    known = {k: v for k, v in known.items() if k >= oldest}
    known.update({m.isoformat(): found[m] for m in minutes if read_from <= m < closed_before})
    cache.set(key, known, timeout=int(max(WINDOWS.values()).total_seconds()))
    return found


def _depth_samples(using: str, since: datetime) -> dict[str, list[list[Any]]]:
    """The workers' per-minute samples since ``since``: queue -> [[minute, ready,
    running], ...], oldest first, read by the sample table's (minute, queue) key."""
    found: dict[str, list[list[Any]]] = defaultdict(list)
    rows = (
        DepthSample.objects.using(using)
        .filter(minute__gte=since)
        .order_by("minute", "queue_name")
        .values_list("minute", "queue_name", "ready", "running")
    )
    for minute, queue, ready, running in rows:
        found[queue].append([minute.isoformat(), ready, running])
    return dict(found)


class _Latency:
    """Wait and run times of the newest finished tasks (at most ``size``), overall,
    per queue and per task path."""

    def __init__(self, finished: QuerySet[TaskRecord], size: int) -> None:
        sample = list(
            finished.order_by("-finished_at").values_list(
                "queue_name", "task_path", "status", "enqueued_at", "run_after", "started_at",
                "last_attempted_at", "finished_at",
            )[:size]
        )  # fmt: skip
        self.sample_size = len(sample)
        self.waits: list[float] = []
        self.runs: list[float] = []
        self.by_queue: dict[str, dict[str, list[float]]] = defaultdict(
            lambda: {"wait": [], "run": []}
        )
        self.by_task: dict[str, dict[str, Any]] = defaultdict(
            lambda: {**_no_counts(), "wait": [], "run": []}
        )
        for queue, path, status, enqueued, run_after, started, attempted, ended in sample:
            task = self.by_task[path]
            task["finished"] += 1
            if status in _ENDS:
                task[_ENDS[status]] += 1
            if started is None or attempted is None or ended is None:
                continue  # cancelled before it ran
            wait = max((started - max(enqueued, run_after or enqueued)).total_seconds(), 0.0)
            run = max((ended - attempted).total_seconds(), 0.0)
            self.waits.append(wait)
            self.runs.append(run)
            self.by_queue[queue]["wait"].append(wait)
            self.by_queue[queue]["run"].append(run)
            task["wait"].append(wait)
            task["run"].append(run)


def _queue_entries(rows: list[QueueRow], latency: _Latency) -> list[dict[str, Any]]:
    return [
        {
            "name": row.name,
            "depth": row.ready,
            "due": row.due,
            "running": row.running,
            "oldest_wait": row.oldest_age,
            "paused": row.paused_at is not None,
            **_summary(latency.by_queue[row.name]["wait"], latency.by_queue[row.name]["run"]),
        }
        for row in rows
    ]


def _task_entries(latency: _Latency) -> list[dict[str, Any]]:
    busiest = sorted(latency.by_task.items(), key=lambda item: -item[1]["finished"])
    return [
        {
            "path": path,
            "finished": stats["finished"],
            **{name: stats[name] for name in _ENDS.values()},
            **_summary(stats["wait"], stats["run"]),
        }
        for path, stats in busiest[:TOP_TASKS]
    ]


def dashboard_data(window: str = "hour", backend: str | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-ready values: of the offload
    backend ``backend``'s database, or, for None, of the admin's database."""
    chosen = backend_named(backend)  # None: the first
    options = chosen.config if chosen is not None else admin_options()
    using = database_of(backend)
    span = WINDOWS.get(window, WINDOWS["hour"])
    now = timezone.now()
    since = _minute(now - span)
    limit = options.admin_count_limit

    finished = TaskRecord.objects.using(using).filter(finished_at__gte=since).order_by()
    per_minute = _per_minute(using, since, now, span)
    minutes = [since + timedelta(minutes=i) for i in range(int(span.total_seconds() // 60) + 1)]

    hour_ago = now - timedelta(hours=1)
    last_hour = [counts for minute, counts in per_minute.items() if minute >= _minute(hour_ago)]
    finished_last_hour = sum(c["finished"] for c in last_hour)

    latency = _Latency(finished, options.dashboard_sample_size)
    ready = _capped_count(using, State.READY, limit)
    running = _capped_count(using, State.RUNNING, limit)
    blocked = _capped_count(using, State.BLOCKED, limit)
    waiting = _capped_count(using, State.WAITING, limit)
    return {
        "generated_at": now.isoformat(),
        "backend": chosen.alias if chosen is not None else None,
        "database": using,
        "window": window if window in WINDOWS else "hour",
        "count_limit": limit,
        "counters": {
            "ready": min(ready, limit),
            "ready_capped": ready > limit,
            "running": min(running, limit),
            "running_capped": running > limit,
            # Waiting on a concurrency limit (see store.gate).
            "blocked": min(blocked, limit),
            "blocked_capped": blocked > limit,
            # Waiting on upstream tasks of a workflow (see store.dependencies).
            "waiting": min(waiting, limit),
            "waiting_capped": waiting > limit,
            "failed_last_hour": sum(c["failed"] for c in last_hour),
            "finished_last_hour": finished_last_hour,
            "throughput_per_minute": round(finished_last_hour / 60, 2),
        },
        "series": {
            "minutes": [m.isoformat() for m in minutes],
            **{
                name: [per_minute[m][name] if m in per_minute else 0 for m in minutes]
                for name in ("finished", *_ENDS.values())
            },
        },
        "latency": {**_summary(latency.waits, latency.runs), "sample": latency.sample_size},
        "depth": _depth_samples(using, since),
        "queues": _queue_entries(queue_rows(backend), latency),
        "tasks": _task_entries(latency),
        "vacuum": vacuum.section(using, options.vacuum_blocker_warning),
    }
