"""The pruner's statements: delete finished tasks, and schedule fire records,
older than a cutoff, one bounded batch at a time.

A batch picks the ids of the oldest deletable rows (``ORDER BY finished_at
LIMIT n``, through the ``finished_at`` index) and deletes those ids. A row is
deletable only while it is finished (SUCCESSFUL, FAILED or CANCELLED: the
status is a parameter, and :func:`finished_rule` refuses any other) and its
``finished_at`` is before the cutoff; the delete tests both again on the row
it deletes, so a task an operator retried between the pick and the delete
stays. READY and RUNNING rows never match: a claim and a prune never want the
same row, and each batch is its own short transaction (autocommit), so the
pruner holds no lock a claim waits for.

Where the engines differ (``Vendor.delete_picked``): PostgreSQL deletes in one
statement whose pick skips locked rows; SQLite in one statement, so one short
write transaction; MariaDB, which has no LIMIT in an IN subquery, reads the
ids, then deletes them by primary key. Rendered in ``tests/sql/prune.*.sql``.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from offload.states import FINISHED_STATES, State
from offload.store.base import TABLE
from offload.store.tasks import TaskStore
from offload.store.vendor import Vendor, read_datetime

FIRE_TABLE = "offload_schedule_fire"
DEPENDENCY_TABLE = "offload_task_dependency"
SCHEDULE_TABLE = "offload_schedule"


@dataclass(frozen=True)
class PruneFilter:
    """Narrows which finished tasks a prune deletes (``offload prune --queue/--task``)."""

    queue: str | None = None
    task_path: str | None = None

    def sql(self) -> tuple[str, list[Any]]:
        terms, params = "", list[Any]()
        if self.queue is not None:
            terms, params = terms + " AND queue_name = %s", [*params, self.queue]
        if self.task_path is not None:
            terms, params = terms + " AND task_path = %s", [*params, self.task_path]
        return terms, params


EVERY_TASK = PruneFilter()


@dataclass(frozen=True)
class Batch:
    """One batch's statement parts: the pick (ids, oldest first, LIMIT last) and
    the terms the delete tests again on each row, with their parameters."""

    table: str
    pick: str
    pick_params: list[Any]
    recheck: str
    recheck_params: list[Any]


def finished_rule(status: State) -> State:
    """``status``, if a task in it is finished; only those are ever pruned."""
    if status not in FINISHED_STATES:
        raise ValueError(f"Only finished tasks are pruned, not {status} ones.")
    return status


def task_batch(status: State, cutoff: Any, limit: int, where: PruneFilter = EVERY_TASK) -> Batch:
    """The batch of finished ``status`` tasks finished before ``cutoff`` (adapted)."""
    terms, params = where.sql()
    recheck = "status = %s AND finished_at < %s"
    return Batch(
        table=TABLE,
        pick=f"SELECT id FROM {TABLE} WHERE {recheck}{terms} ORDER BY finished_at LIMIT %s",
        pick_params=[finished_rule(status), cutoff, *params, limit],
        recheck=recheck,
        recheck_params=[status, cutoff],
    )


def fire_batch(cutoff: Any, limit: int) -> Batch:
    """The batch of fire records handled before ``cutoff``. Old records have
    the low ids, so the pick walks the primary key and stops after ``limit``.

    A record is kept while its schedule's ``next_fire_at`` has not moved past
    its tick: that tick may still be tried again (a scheduler that died
    between firing and advancing), and the record is what makes the second
    try fail rather than fire twice.
    """
    deletable = (
        f"fired_at < %s AND NOT EXISTS (SELECT 1 FROM {SCHEDULE_TABLE} "
        f"WHERE {SCHEDULE_TABLE}.id = {FIRE_TABLE}.schedule_id "
        f"AND {SCHEDULE_TABLE}.next_fire_at <= {FIRE_TABLE}.fire_at)"
    )
    return Batch(
        table=FIRE_TABLE,
        pick=f"SELECT id FROM {FIRE_TABLE} WHERE {deletable} ORDER BY id LIMIT %s",
        pick_params=[cutoff, limit],
        recheck=deletable,
        recheck_params=[cutoff],
    )


def dependency_batch(limit: int) -> Batch:
    """The batch of workflow links (see store.dependencies) whose waiting
    task is no longer stored: once a task is pruned, nothing reads which
    upstreams it had. A link whose upstream is gone stays while its task
    does (the task's page still names the upstream)."""
    gone = f"NOT EXISTS (SELECT 1 FROM {TABLE} WHERE {TABLE}.id = {DEPENDENCY_TABLE}.task_id)"
    return Batch(
        table=DEPENDENCY_TABLE,
        pick=f"SELECT id FROM {DEPENDENCY_TABLE} WHERE {gone} ORDER BY id LIMIT %s",
        pick_params=[limit],
        recheck=gone,
        recheck_params=[],
    )


def one_statement(vendor: Vendor, batch: Batch) -> tuple[str, list[Any]] | None:
    """The batch as one DELETE, or None where the engine reads the ids first."""
    if vendor.delete_picked is None:
        return None
    sql = vendor.delete_picked.format(table=batch.table, pick=batch.pick, recheck=batch.recheck)
    return sql, [*batch.pick_params, *batch.recheck_params]


def delete_read(batch: Batch, ids: list[int]) -> tuple[str, list[Any]]:
    """The DELETE of the ids a pick read (MariaDB), tested again row by row."""
    marks = ", ".join(["%s"] * len(ids))
    sql = f"DELETE FROM {batch.table} WHERE id IN ({marks}) AND {batch.recheck}"
    return sql, [*ids, *batch.recheck_params]


def delete_batch(store: TaskStore, batch: Batch) -> tuple[int, int]:
    """Run one batch; return (rows picked, rows deleted). Fewer picked than the
    limit means nothing older is left (a row skipped as locked waits for the
    next pass)."""
    single = one_statement(store.vendor, batch)
    with store.connection.cursor() as cursor:
        if single is not None:
            cursor.execute(*single)
            deleted = max(int(cursor.rowcount), 0)
            return deleted, deleted
        cursor.execute(batch.pick, batch.pick_params)
        ids = [int(row[0]) for row in cursor.fetchall()]
        if not ids:
            return 0, 0
        cursor.execute(*delete_read(batch, ids))
        return len(ids), max(int(cursor.rowcount), 0)


@dataclass(frozen=True)
class Preview:
    """What a prune would delete: how many rows, and their oldest and newest finish."""

    count: int
    oldest: datetime | None
    newest: datetime | None


def preview(
    store: TaskStore, status: State, cutoff: Any, where: PruneFilter = EVERY_TASK
) -> Preview:
    """How many ``status`` tasks finished before ``cutoff`` (adapted) a prune would
    delete, and when the oldest and newest of them finished. Reads only."""
    terms, params = where.sql()
    sql = (
        f"SELECT COUNT(*), MIN(finished_at), MAX(finished_at) FROM {TABLE} "
        f"WHERE status = %s AND finished_at < %s{terms}"
    )
    with store.connection.cursor() as cursor:
        cursor.execute(sql, [finished_rule(status), cutoff, *params])
        count, oldest, newest = cursor.fetchone()
    return Preview(int(count or 0), read_datetime(oldest), read_datetime(newest))
