"""Queue depth samples: one row per queue and minute, for the dashboard's chart.

The elected sampler (``offload.worker.sampler``) calls :func:`sample` once a
minute. Reading the depth costs one grouped read of the claim index over the
READY and RUNNING rows (the index leads with status, then the queue; finished
rows sit in other ranges and are never read). Writing it is one INSERT of a
row per queue that skips rows already there: the unique (minute, queue) key
makes a minute's sample once however many samplers run. :func:`prune` drops
the samples older than the dashboard's longest window, by the same key.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from offload.states import State
from offload.store.base import TABLE
from offload.store.tasks import TaskStore
from offload.store.vendor import read_datetime

DEPTH_TABLE = "offload_depth_sample"
# How long samples are kept: the dashboard's longest window.
KEPT_FOR = timedelta(days=1)


def read_depth(store: TaskStore, now: datetime) -> dict[str, tuple[int, int, float | None]]:
    """Per queue with READY or RUNNING tasks: (ready, running, age of the oldest due
    READY task in seconds at ``now``, or None when none is due)."""
    ops = store.connection.ops
    at = ops.adapt_datetimefield_value(now)
    sql = (
        f"SELECT queue_name, status, COUNT(*), "
        f"MIN(CASE WHEN status = %s AND available_at <= %s THEN available_at END) "
        f"FROM {TABLE} WHERE status IN (%s, %s) GROUP BY queue_name, status"
    )
    found: dict[str, tuple[int, int, float | None]] = {}
    with store.connection.cursor() as cursor:
        cursor.execute(sql, [State.READY, at, State.READY, State.RUNNING])
        rows = cursor.fetchall()
    for queue, status, count, oldest in rows:
        ready, running, age = found.get(queue, (0, 0, None))
        if status == State.READY:
            ready = int(count)
            due = read_datetime(oldest)
            age = None if due is None else max((now - due).total_seconds(), 0.0)
        else:
            running = int(count)
        found[queue] = (ready, running, age)
    return found


def sample(store: TaskStore, queues: Iterable[str] = ()) -> tuple[datetime, int]:
    """Write this minute's depth of every busy queue and of ``queues`` (the
    configured ones, so an idle queue shows zeros); return the minute and the
    rows written (0 when the minute was already sampled)."""
    now = store.database_now()
    minute = now.replace(second=0, microsecond=0)
    depth = read_depth(store, now)
    for name in queues:
        depth.setdefault(name, (0, 0, None))
    if not depth:
        return minute, 0
    at = store.connection.ops.adapt_datetimefield_value(minute)
    params: list[Any] = []
    for name, (ready, running, age) in sorted(depth.items()):
        params += [at, name, ready, running, age]
    sql = store.vendor.insert_or_skip.format(
        table=DEPTH_TABLE,
        columns="minute, queue_name, ready, running, oldest_ready_seconds",
        rows=", ".join(["(%s, %s, %s, %s, %s)"] * len(depth)),
    )
    with store.connection.cursor() as cursor:
        cursor.execute(sql, params)
        return minute, max(int(cursor.rowcount), 0)


def prune(store: TaskStore, before: datetime) -> int:
    """Delete the samples of minutes before ``before``; return how many."""
    at = store.connection.ops.adapt_datetimefield_value(before)
    with store.connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DEPTH_TABLE} WHERE minute < %s", [at])
        return int(cursor.rowcount)
