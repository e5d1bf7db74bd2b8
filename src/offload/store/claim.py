"""The claim: a worker takes due READY tasks, in claim order, under a lease.

Three engine shapes, one meaning (the statements are in ``vendor.claim``, and
rendered in ``tests/sql/claim.*.sql``):

* PostgreSQL: a MATERIALIZED CTE picks the rows ``FOR UPDATE SKIP LOCKED`` and
  one ``UPDATE ... FROM`` claims them, ``RETURNING`` what the worker needs.
* SQLite: one ``UPDATE ... WHERE id IN (pick) RETURNING``; the statement takes
  the database's write lock before it reads, so it is its own transaction.
* MariaDB: a plain read, then an UPDATE fenced by the attempt each row was
  read with (see :meth:`ClaimStore._claim_without_returning`).

Each claimed row becomes RUNNING with ``attempt + 1`` (its new fencing token),
a lease until now + ``lease_seconds``, ``claimed_at`` now, and the worker
appended to ``worker_ids``. The claim does not say the task started: a worker
claims a batch and runs it as threads free up, so a claimed task may wait in
its buffer; the worker writes when its code began (see ``store.outcomes``).
"""

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

from offload.payload import decode
from offload.states import State
from offload.store.base import TABLE, Fence, StoreBase, required
from offload.store.dependencies import with_upstream
from offload.store.rows import ALL_QUEUES, CLAIMED_COLUMNS, ClaimedTask, QueueFilter
from offload.store.vendor import Vendor, read_datetime
from offload.uniqueness import WAITING

# Leaves out the queues an operator paused (rows of offload_queue with
# paused_at set).
NOT_PAUSED = " AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)"

# The claim order, used by every engine (the claim index serves it).
CLAIM_ORDER = "priority DESC, available_at, id"

# How many times a claim without RETURNING reads again for the rows that
# other workers took first (see ``ClaimStore._claim_without_returning``).
CLAIM_ROUNDS = 4

# The partial index of ready async tasks (built by the initial migration), for
# claims of async tasks alone.
ASYNC_CLAIM_INDEX = "offload_task_async_claim_idx"

# A task of unique scope "waiting" lets go of its key when it is claimed (see
# offload.uniqueness). A term of the claim's own UPDATE, not a statement of
# its own: for a task without a key (unique_scope NULL) it writes the NULL
# that is there, a comparison per row and no index entry (PostgreSQL sees
# the indexed column unchanged and keeps the update HOT; the partial index
# has no entry for the row). The scope is a constant, as the index-free
# choice of the column needs no parameter.
RELEASE_WAITING_KEY = (
    f"unique_key = CASE WHEN unique_scope = '{WAITING}' THEN NULL ELSE unique_key END"
)

# Where each of the claimed columns is in a row of the claim.
_AT = {name: index for index, name in enumerate(CLAIMED_COLUMNS.split(", "))}


def pick(
    vendor: Vendor, queues: QueueFilter, is_async: bool | None, limit: int, columns: str = "id"
) -> tuple[str, list[Any]]:
    """The SELECT of the tasks a claim takes (``columns`` of each), in claim
    order, and its parameters."""
    queue_sql, queue_params = queues.sql()
    # The kind is a filter after the claim index, not part of it: adding it
    # to the index would split every queue's order in two and force a sort.
    # Async tasks alone have a partial index of their own (where the engine
    # has them), which the planner uses only when the query states its
    # condition in the same terms, so they are written as constants (from
    # this module: nothing from outside goes into the SQL).
    status_sql, status_params, table = "status = %s", [State.READY], TABLE
    kind_sql = "" if is_async is None else " AND is_async = %s"
    kind_params: list[Any] = [] if is_async is None else [is_async]
    if is_async and vendor.async_only is not None:
        status_sql, status_params = f"status = '{State.READY.value}'", []
        kind_sql, kind_params = f" AND {vendor.async_only}", []
        hint = vendor.use_index.format(index=ASYNC_CLAIM_INDEX)
        table = f"{TABLE} {hint}" if hint else TABLE
    # A queue an operator paused is skipped here, in the claim itself, so a
    # pause takes effect for every worker at its next claim with no message
    # to deliver. The subquery reads a handful of rows and takes no locks.
    sql = (
        f"SELECT {columns} FROM {table} WHERE {status_sql}{queue_sql}{kind_sql} "
        f"AND available_at <= {vendor.now}{NOT_PAUSED} "
        f"ORDER BY {CLAIM_ORDER} LIMIT %s"
    )
    return sql, [*status_params, *queue_params, *kind_params, limit]


def claim_assignments(
    vendor: Vendor, worker_id: str, lease_seconds: float, now: Any = None
) -> tuple[str, list[Any]]:
    """The SET clause that claims a row, and its parameters. ``now`` is a time
    already read from the database's clock (the claim without RETURNING
    writes the one it read); None: the clock at the write."""
    at, at_params = (vendor.now, []) if now is None else ("%s", [now])
    assignments = (
        "status = %s, attempt = attempt + 1, lease_owner = %s, "
        f"lease_expires_at = {vendor.now_plus_seconds}, "
        f"claimed_at = {at}, "
        f"worker_ids = {vendor.append_string.format(col='worker_ids')}, "
        f"{RELEASE_WAITING_KEY}"
    )
    return assignments, [State.RUNNING, worker_id, lease_seconds, *at_params, worker_id]


def claim_statement(
    vendor: Vendor,
    worker_id: str,
    queues: QueueFilter,
    is_async: bool | None,
    limit: int,
    lease_seconds: float,
) -> tuple[str, list[Any]]:
    """The one-statement claim (``vendor.claim``) and its parameters."""
    if vendor.claim is None:
        raise ValueError(f"{vendor.name} claims in two statements (see claim_read, claim_write).")
    picked, pick_params = pick(vendor, queues, is_async, limit)
    assignments, assign_params = claim_assignments(vendor, worker_id, lease_seconds)
    sql, pick_first = _fill_claim(vendor.claim, picked, assignments)
    if pick_first:
        return sql, [*pick_params, *assign_params]
    return sql, [*assign_params, *pick_params]


@functools.lru_cache(maxsize=64)
def _fill_claim(template: str, picked: str, assignments: str) -> tuple[str, bool]:
    """``vendor.claim`` filled in, and whether its pick's parameters come first.

    Cached: a worker sends the same few claims all its life, and the
    formatting would otherwise cost each claim more than building its parts.
    """
    sql = template.format(
        pick=picked, table=TABLE, assignments=assignments, columns=CLAIMED_COLUMNS,
        t_columns=", ".join("t." + c for c in CLAIMED_COLUMNS.split(", ")),
    )  # fmt: skip
    return sql, template.index("{pick}") < template.index("{assignments}")


def claim_read(
    vendor: Vendor, queues: QueueFilter, is_async: bool | None, limit: int
) -> tuple[str, list[Any]]:
    """The first statement of the two-statement claim: every claimed column and the clock."""
    return pick(vendor, queues, is_async, limit, columns=f"{CLAIMED_COLUMNS}, {vendor.now}")


def claim_write(
    vendor: Vendor,
    worker_id: str,
    lease_seconds: float,
    now: Any,
    read: Sequence[tuple[int, int]],
) -> tuple[str, list[Any]]:
    """The second statement: claim the rows ``read`` as (id, attempt), each
    fenced by that attempt and READY, writing the clock ``now`` read with them."""
    assignments, assign_params = claim_assignments(vendor, worker_id, lease_seconds, now)
    fence, fence_params = Fence.each(read, State.READY)
    return f"UPDATE {TABLE} SET {assignments} WHERE {fence}", [*assign_params, *fence_params]


def _as_claimed(row: Sequence[Any], worker_id: str) -> list[Any]:
    """A row read before its claim (the clock read last), as the claim left it."""
    values = list(row[:-1])
    values[_AT["attempt"]] += 1
    with contextlib.suppress(TypeError, ValueError):  # from_row reports unreadable JSON
        worker_ids = decode(values[_AT["worker_ids"]])
        if isinstance(worker_ids, list):
            values[_AT["worker_ids"]] = [*worker_ids, worker_id]
    return values


class ClaimStore(StoreBase):
    def claim(
        self,
        worker_id: str,
        *,
        queues: QueueFilter = ALL_QUEUES,
        limit: int,
        lease_seconds: float,
        is_async: bool | None = None,
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` due READY tasks for ``worker_id``, in claim order.

        Concurrent claimers never receive the same row. ``is_async``
        restricts the claim to async (True) or sync (False) tasks, for a
        worker that has room for only one kind.
        """
        if limit < 1 or queues.empty:
            return []
        vendor = self.vendor
        if vendor.claim is None:
            claimed = self._claim_without_returning(
                worker_id, queues, is_async, limit, lease_seconds
            )
        else:
            rows = self._fetch(*claim_statement(vendor, worker_id, queues, is_async, limit,
                                                lease_seconds))  # fmt: skip
            claimed = [ClaimedTask.from_row(row) for row in rows]
            # RETURNING gives no order; run them in the order they were picked.
            claimed.sort(key=lambda task: task.claim_order)
        # A workflow task receives its upstreams' results (store.dependencies).
        return with_upstream(self, claimed)

    def _claim_without_returning(
        self,
        worker_id: str,
        queues: QueueFilter,
        is_async: bool | None,
        limit: int,
        lease_seconds: float,
    ) -> list[ClaimedTask]:
        """The claim on MariaDB, which has no ``UPDATE ... RETURNING``.

        A locking read (``FOR UPDATE SKIP LOCKED``) of the claim index is slow
        there: InnoDB keeps every claimed row's old entry in the index, marked
        deleted, until its purge thread catches up, and a locking read looks up
        each of those in the table. A drain's claims read past thousands of
        them, and a claim of 20 took 1.5 to 2.7 ms against 0.3 ms when purge was
        done. So the claim is optimistic, two statements and no transaction:

        1. A plain read (no locks; it skips the purged-to-be entries cheaply)
           of the due tasks in claim order, every column the worker needs, and
           the database's clock.
        2. One UPDATE of exactly those rows, each fenced by the ``attempt`` it
           was read with and ``READY``, so a row that another worker claimed
           (or that was cancelled, or claimed, failed and put back for a retry)
           in between is left alone. It writes the clock read in step 1, so
           the rows read are, with the claim's own changes, what was written.

        When the UPDATE takes every row, that is the claim. When another
        worker won some (both read the same head of the queue), the rows this
        worker took are read back (a row is RUNNING with the next attempt and
        this worker's lease only if this worker claimed it) and the claim
        reads again for the rest, up to ``CLAIM_ROUNDS`` times. The UPDATE
        locks its rows in primary-key order, as every other multi-row update
        here does, so two claims cannot deadlock.
        """
        vendor = self.vendor
        taken: list[ClaimedTask] = []
        for _ in range(CLAIM_ROUNDS):
            wanted = limit - len(taken)
            if not wanted:
                break
            rows = self._fetch(*claim_read(vendor, queues, is_async, wanted))
            if not rows:
                break
            now = rows[0][-1]
            found = len(rows)
            read = [(row[0], row[_AT["attempt"]]) for row in rows]
            won = self._write(*claim_write(vendor, worker_id, lease_seconds, now, read))
            if 0 < won < len(rows):
                mine = self._claimed_by(worker_id, [(id_, attempt + 1) for id_, attempt in read])
                rows = [row for row in rows if row[0] in mine]
            elif won == 0:
                rows = []
            taken += [ClaimedTask.from_row(_as_claimed(row, worker_id)) for row in rows]
            if found < wanted:
                break  # every due task was read: there is no more to try for
        return taken

    def _claimed_by(self, worker_id: str, took: Sequence[tuple[int, int]]) -> set[Any]:
        """Which of the rows (id, attempt after the claim) ``worker_id`` holds."""
        fence, fence_params = Fence.each(took, State.RUNNING, owner=worker_id)
        rows = self._fetch(f"SELECT id FROM {TABLE} WHERE {fence}", fence_params)
        return {row[0] for row in rows}

    def explain_claim(
        self, queues: QueueFilter = ALL_QUEUES, *, is_async: bool | None = False, limit: int = 10
    ) -> list[str]:
        """The database's plan for a claim's SELECT, one line per row of EXPLAIN.

        For operators and the benchmark: the claim must stay an ordered index
        scan that stops after ``limit`` rows, however many tasks wait or have
        finished. A sort here would cost time in proportion to the backlog.
        """
        return self._explain(*pick(self.vendor, queues, is_async, limit))

    def seconds_until_due(self, queues: QueueFilter = ALL_QUEUES) -> float | None:
        """Seconds until the next READY task becomes due (<= 0: one is due now).

        None when no task is waiting. Both ends of the difference come from the
        database's clock, so a worker whose host clock is off still wakes on time.
        """
        if queues.empty:
            return None
        vendor = self.vendor
        queue_sql, queue_params = queues.sql()
        # Paused queues are left out as in the claim: a burst run must not wait
        # for them, nor an idle worker wake for tasks it may not take.
        sql = (
            f"SELECT MIN(available_at), {vendor.now} FROM {TABLE} "
            f"WHERE status = %s{queue_sql}{NOT_PAUSED}"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [State.READY, *queue_params])
            due, now = cursor.fetchone()
        if due is None:
            return None
        return (required(read_datetime(due)) - required(read_datetime(now))).total_seconds()
