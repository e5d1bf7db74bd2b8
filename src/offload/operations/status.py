"""``offload status``: what the queues, the workers and the schedules are doing,
read once, as a JSON-ready dict of a stable shape (docs/operations.md#status).

Every read is bounded (see ``offload.store.reads``); times are measured against
the database's clock, which wrote the heartbeats and the due times.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connections

from offload.backend import DatabaseBackend
from offload.models import WorkerRecord
from offload.store import reads, vacuum
from offload.store.base import database_now

# Bumped only when a key changes meaning or goes away; new keys may appear.
SHAPE_VERSION = 1
FAILURE_WINDOW = timedelta(hours=1)
MAX_WORKERS = 1000
MAX_CURRENT_TASKS = 1000
MAX_SCHEDULES = 1000


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 3)


def _queues(using: str, backend: DatabaseBackend, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": q.name, "ready": q.ready, "due": q.due, "running": q.running,
            "oldest_due_at": _iso(q.oldest_due), "oldest_due_age_seconds": _age(now, q.oldest_due),
            "paused": q.paused_at is not None, "paused_at": _iso(q.paused_at),
            "paused_by": q.paused_by or None, "blocked": q.blocked, "waiting": q.waiting,
        }
        for q in reads.queue_depths(using, backend.queues, now)
    ]  # fmt: skip


def _process(
    row: WorkerRecord, tasks: Sequence[Any], now: datetime, lease: float
) -> dict[str, Any]:
    age = _age(now, row.heartbeat_at) or 0.0
    return {
        "id": row.id, "name": row.name, "pid": row.pid, "threads": row.threads,
        "heartbeat_at": _iso(row.heartbeat_at), "heartbeat_age_seconds": age,
        "stale": age > lease,
        "current_tasks": [
            {"id": t.pk, "task_path": t.task_path, "attempt": t.attempt,
             "running_seconds": _age(now, t.last_attempted_at)}
            for t in tasks
        ],
    }  # fmt: skip


def _workers(using: str, now: datetime, lease: float) -> list[dict[str, Any]]:
    """Worker processes grouped by their supervisor (one ``offload worker``)."""
    rows = reads.workers(using, MAX_WORKERS)
    running = reads.current_tasks(using, [r.id for r in rows], MAX_CURRENT_TASKS)
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r.hostname, r.supervisor_pid, r.pid)):
        key = (row.hostname, row.supervisor_pid)
        group = groups.setdefault(key, {
            "hostname": row.hostname, "supervisor_pid": row.supervisor_pid,
            "backend": row.backend, "queues": row.queues, "threads": row.threads,
            "started_at": _iso(row.started_at), "processes": [],
        })  # fmt: skip
        group["processes"].append(_process(row, running.get(row.id, []), now, lease))
    found = []
    for group in groups.values():
        processes = group["processes"]
        group["process_count"] = len(processes)
        group["heartbeat_age_seconds"] = min(p["heartbeat_age_seconds"] for p in processes)
        group["stale"] = all(p["stale"] for p in processes)
        found.append(group)
    return found


def _schedules(using: str, backend: DatabaseBackend, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name, "enabled": s.enabled, "next_fire_at": _iso(s.next_fire_at),
            "next_fire_in_seconds": None if s.next_fire_at is None
            else round((s.next_fire_at - now).total_seconds(), 3),
            "last_fired_at": _iso(s.last_fired_at), "last_error": s.last_error or None,
        }
        for s in reads.schedules(using, backend.alias, MAX_SCHEDULES)
    ]  # fmt: skip


def collect(backend: DatabaseBackend) -> dict[str, Any]:
    """The status of ``backend``'s queues, workers, failures and schedules."""
    options = backend.config
    using = options.database
    now = database_now(connections[using])
    workers = _workers(using, now, options.lease_seconds)
    processes = [p for w in workers for p in w["processes"]]
    cap = options.admin_count_limit
    failed = reads.failures_since(using, now - FAILURE_WINDOW, cap + 1)
    queues = _queues(using, backend, now)
    return {
        "version": SHAPE_VERSION,
        "backend": backend.alias,
        "database": using,
        "generated_at": now.isoformat(),
        "lease_seconds": options.lease_seconds,
        "queues": queues,
        # Tasks waiting on a concurrency limit, in every queue (see store.gate).
        "blocked": sum(q["blocked"] for q in queues),
        # Tasks waiting on upstream tasks of a workflow (see store.dependencies).
        "waiting": sum(q["waiting"] for q in queues),
        "workers": workers,
        "live_processes": sum(not p["stale"] for p in processes),
        "stale_processes": sum(p["stale"] for p in processes),
        "failures": {
            "window_seconds": int(FAILURE_WINDOW.total_seconds()),
            "count": min(failed, cap),
            "capped": failed > cap,
        },
        "schedules": _schedules(using, backend, now),
        "vacuum": vacuum.section(using, options.vacuum_blocker_warning),
    }
