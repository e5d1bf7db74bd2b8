"""Every SQL statement that writes task state: enqueue, claim, complete, fail, release.

Why it is written this way:

* Raw SQL through Django's connection, not the ORM: the claim needs
  ``FOR UPDATE SKIP LOCKED`` inside an ``UPDATE ... RETURNING`` and the writes
  need JSON appends and the database's clock, none of which the ORM can say in
  one statement. Each call is one round trip where the engine allows it.
* Every write that ends or returns a claim is fenced:
  ``WHERE id = %s AND attempt = %s AND status = 'RUNNING'``. ``attempt`` is
  incremented by each claim, so a worker that was presumed dead (its task
  rescued and claimed again) finds no row to update, and its stale result is
  dropped instead of overwriting the newer attempt. Callers get a bool.
* Times come from the database's clock (see ``vendor``), never the host's.
* The statements run on whatever transaction state the connection is in: an
  enqueue inside the caller's ``atomic()`` joins it, so a rolled-back request
  enqueues nothing and no worker sees a task before it commits.
* On PostgreSQL the enqueue statement also sends ``NOTIFY`` on
  ``NOTIFY_CHANNEL`` (payload: the queue name). Notifications are delivered at
  commit, so an idle worker wakes exactly when the task becomes visible, and a
  rolled-back enqueue wakes nobody. Sending it from the INSERT itself costs no
  extra round trip.
"""

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.db import DatabaseError, IntegrityError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from offload.payload import decode
from offload.progress import Progress
from offload.states import State
from offload.store.connection import atomic_on, fetch_one
from offload.store.vendor import Vendor, read_datetime, vendor_for
from offload.store.wakeup import Waker, wake_key, waker_for

TABLE = "offload_task"
WORKER_TABLE = "offload_worker"
LEASE_TABLE = "offload_lease"
NOTIFY_CHANNEL = "offload_task"

# What a worker needs to run a claimed task and rebuild its TaskResult.
_CLAIMED_COLUMNS = (
    "id, task_path, backend, queue_name, priority, run_after, available_at, enqueued_at, "
    "started_at, last_attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, "
    "max_attempts, timeout"
)

# Leaves out the queues an operator paused (rows of offload_queue with
# paused_at set).
_NOT_PAUSED = " AND queue_name NOT IN (SELECT name FROM offload_queue WHERE paused_at IS NOT NULL)"

# The columns every INSERT of a new task fills, in the order of ``TaskStore._row``.
_INSERT_COLUMNS = (
    "(task_path, backend, queue_name, priority, status, is_async, max_attempts, timeout, "
    "run_after, available_at, enqueued_at, attempt, worker_ids, args, kwargs, errors)"
)

# PostgreSQL's multi-row insert: one array parameter per column, unnested in
# order. A VALUES list would cost the driver a parse of thousands of
# placeholders per statement, longer than the insert itself.
_INSERT_FROM_ARRAYS = (
    f"INSERT INTO {TABLE} {_INSERT_COLUMNS} "
    "SELECT r.task_path, r.backend, r.queue_name, r.priority, %s, r.is_async, "
    "r.max_attempts, r.timeout, r.run_after, COALESCE(r.run_after, statement_timestamp()), "
    "statement_timestamp(), 0, '[]'::jsonb, r.args::jsonb, r.kwargs::jsonb, '[]'::jsonb "
    "FROM unnest(%s::text[], %s::text[], %s::text[], %s::smallint[], %s::boolean[], "
    "%s::integer[], %s::double precision[], %s::timestamptz[], %s::text[], %s::text[]) "
    "WITH ORDINALITY AS r(task_path, backend, queue_name, priority, is_async, max_attempts, "
    "timeout, run_after, args, kwargs, n) "
    "ORDER BY r.n RETURNING id, enqueued_at"
)

# Where each of those columns is in a row of the claim.
_AT = {name: index for index, name in enumerate(_CLAIMED_COLUMNS.split(", "))}

# How many times a claim without RETURNING reads again for the rows that
# other workers took first (see ``TaskStore._claim_without_returning``).
CLAIM_ROUNDS = 4

# The partial index of ready async tasks (migration 0008), for claims of async
# tasks alone.
ASYNC_CLAIM_INDEX = "offload_task_async_claim_idx"

# The claim order, used by every engine (the claim index serves it).
_CLAIM_ORDER = "priority DESC, available_at, id"


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task this worker holds a lease on, as of the claim."""

    id: int
    task_path: str
    backend: str
    queue_name: str
    priority: int
    run_after: datetime | None
    available_at: datetime
    enqueued_at: datetime
    started_at: datetime
    last_attempted_at: datetime
    attempt: int
    worker_ids: list[str]
    errors: list[dict[str, Any]]
    args: list[Any]
    kwargs: dict[str, Any]
    is_async: bool = False
    max_attempts: int = 1
    timeout: float | None = None
    # Why the row cannot run (its stored JSON is unreadable), or None.
    problem: str | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "ClaimedTask":
        (id_, path, backend, queue, priority, run_after, available_at, enqueued_at, started_at,
         attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, max_attempts,
         timeout) = row  # fmt: skip
        # A row whose JSON does not decode (written by hand, or by another tool)
        # must fail on its own, not break the claim of the tasks around it.
        problem = None
        try:
            decoded = [decode(worker_ids), decode(errors), decode(args), decode(kwargs)]
        except (TypeError, ValueError) as exc:
            problem = f"Stored JSON of task {id_} is unreadable: {exc}"
            decoded = [[], [], [], {}]
        if not isinstance(decoded[0], list) or not isinstance(decoded[1], list):
            decoded[0:2] = [[], []]
        if not problem and (not isinstance(decoded[2], list) or not isinstance(decoded[3], dict)):
            problem = f"Stored arguments of task {id_} are not a list and a dict."
            decoded[2:4] = [[], {}]
        return cls(
            id=int(id_),
            task_path=path,
            backend=backend,
            queue_name=queue,
            priority=int(priority),
            run_after=read_datetime(run_after),
            available_at=_required(read_datetime(available_at)),
            enqueued_at=_required(read_datetime(enqueued_at)),
            started_at=_required(read_datetime(started_at)),
            last_attempted_at=_required(read_datetime(attempted_at)),
            attempt=int(attempt),
            worker_ids=decoded[0],
            errors=decoded[1],
            args=decoded[2],
            kwargs=decoded[3],
            is_async=bool(is_async),
            max_attempts=int(max_attempts),
            timeout=None if timeout is None else float(timeout),
            problem=problem,
        )

    @property
    def claim_order(self) -> tuple[int, datetime, int]:
        return (-self.priority, self.available_at, self.id)


def _required(value: datetime | None) -> datetime:
    if value is None:
        raise ValueError("A claimed task is missing a timestamp the claim sets.")
    return value


def _as_claimed(row: Sequence[Any], worker_id: str, now: Any) -> list[Any]:
    """A row read before its claim, as the claim left it (the clock read last)."""
    values = list(row[:-1])
    values[_AT["attempt"]] += 1
    values[_AT["started_at"]] = values[_AT["started_at"]] or now
    values[_AT["last_attempted_at"]] = now
    with contextlib.suppress(TypeError, ValueError):  # from_row reports unreadable JSON
        worker_ids = decode(values[_AT["worker_ids"]])
        if isinstance(worker_ids, list):
            values[_AT["worker_ids"]] = [*worker_ids, worker_id]
    return values


def _by_attempt(pairs: Sequence[tuple[int, int]]) -> tuple[str, list[Any]]:
    """``id IN (...) AND ((id = %s AND attempt = %s) OR ...)`` for ``(id, attempt)``
    pairs, and its parameters: each row fenced by its own attempt, the id list
    there so the primary key finds the rows."""
    marks = ", ".join(["%s"] * len(pairs))
    fences = " OR ".join(["(id = %s AND attempt = %s)"] * len(pairs))
    params: list[Any] = [pair[0] for pair in pairs]
    for task_id, attempt in pairs:
        params += [task_id, attempt]
    return f"id IN ({marks}) AND ({fences})", params


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a heartbeat found: the tasks the worker holds, by the database."""

    held: dict[int, int]  # task id -> attempt, every RUNNING row leased to the worker
    cancels: list[int]  # the ids among them whose cancellation was requested


@dataclass(frozen=True, slots=True)
class NewTask:
    """A row to insert; arguments already validated and encoded as JSON."""

    task_path: str
    backend: str
    queue_name: str
    priority: int
    run_after: datetime | None
    args_json: str
    kwargs_json: str
    is_async: bool = False
    max_attempts: int = 1
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which queues a worker takes tasks from: ``only`` these (None: all), minus ``excluded``."""

    only: tuple[str, ...] | None = None
    excluded: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.only is not None and not self.only

    def allows(self, queue: str) -> bool:
        return (self.only is None or queue in self.only) and queue not in self.excluded

    def sql(self) -> tuple[str, list[str]]:
        """An ``AND ...`` clause on queue_name, and its parameters."""
        # An explicit list leaves the exclusions already applied by the caller
        # (see ``worker.config``), so the claim index gets equality on the queue.
        if self.only is not None:
            if len(self.only) == 1:
                return " AND queue_name = %s", [self.only[0]]
            return f" AND queue_name IN ({', '.join(['%s'] * len(self.only))})", list(self.only)
        if self.excluded:
            marks = ", ".join(["%s"] * len(self.excluded))
            return f" AND queue_name NOT IN ({marks})", list(self.excluded)
        return "", []


ALL_QUEUES = QueueFilter()


class TaskStore:
    """The task table on one database alias.

    By default it uses Django's shared connection for the alias (so an enqueue
    joins the caller's transaction); a worker passes its private connection.
    """

    def __init__(self, alias: str, connection: BaseDatabaseWrapper | None = None) -> None:
        self.alias = alias
        self._connection = connection

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return self._connection or connections[self.alias]

    def prepare(self) -> None:
        """Drop a private connection that had an error and no longer answers.

        Costs nothing while no error has occurred; it reopens on next use.
        """
        if self._connection is not None:
            self._connection.close_if_unusable_or_obsolete()

    def reset(self) -> None:
        """Close a private connection after a database error; it reopens on next use."""
        if self._connection is not None:
            # Closing a connection the server already dropped may fail too;
            # Django forgets it either way, which is all that matters here.
            with contextlib.suppress(DatabaseError):
                self._connection.close()

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database file now, without
        waiting for anyone; nothing on the other engines."""
        statement = self.vendor.idle_checkpoint
        if statement is not None:
            with self.connection.cursor() as cursor:
                cursor.execute(statement)

    @cached_property
    def vendor(self) -> Vendor:
        # An alias never changes engine; asking once keeps the check (which may
        # query the server's version) off the hot path.
        return vendor_for(self.connection)

    # -- enqueue ------------------------------------------------------------

    def enqueue(self, new: NewTask) -> tuple[int, datetime]:
        """Insert one READY task; return its id and enqueue time (database clock)."""
        params = self._row_params(new)
        if self.vendor.name == "postgresql":
            params += [NOTIFY_CHANNEL, new.queue_name]
        task_id, enqueued_at, *_ = fetch_one(self.connection, self._insert_one, params)
        self._wake_local((new.queue_name,))
        return int(task_id), _required(read_datetime(enqueued_at))

    @cached_property
    def _insert_one(self) -> str:
        """The statement of ``enqueue``, built once: it is the same for every task."""
        insert = (
            f"INSERT INTO {TABLE} {_INSERT_COLUMNS} VALUES {self._row_values} "
            "RETURNING id, enqueued_at"
        )
        if self.vendor.name == "postgresql":
            # Delayed tasks notify too: a sleeping worker re-reads when the next
            # task is due, so one enqueued for sooner than that is not missed.
            return (
                f"WITH new AS ({insert}) SELECT new.id, new.enqueued_at, pg_notify(%s, %s) FROM new"
            )
        return insert

    def enqueue_many(self, rows: Sequence[NewTask], chunk_size: int) -> list[tuple[int, datetime]]:
        """Insert READY tasks, ``chunk_size`` rows per INSERT, all in one transaction.

        Returns (id, enqueue time) for each row, in the order given. Either every
        row is inserted or none is. On PostgreSQL each queue is notified once
        for the whole batch, at commit.
        """
        if not rows:
            return []
        # Never more placeholders in one statement than the driver accepts.
        per_row = len(self._row_params(rows[0]))
        most = getattr(self.connection.features, "max_query_params", None)
        if most:
            chunk_size = max(1, min(chunk_size, most // per_row))
        found: list[tuple[int, datetime]] = []
        with atomic_on(self.connection), self.connection.cursor() as cursor:
            for start in range(0, len(rows), chunk_size):
                chunk = rows[start : start + chunk_size]
                if self.vendor.name == "postgresql":
                    cursor.execute(_INSERT_FROM_ARRAYS, [State.READY, *self._array_params(chunk)])
                else:
                    params: list[Any] = []
                    for new in chunk:
                        params += self._row_params(new)
                    cursor.execute(
                        f"INSERT INTO {TABLE} {_INSERT_COLUMNS} VALUES "
                        f"{', '.join([self._row_values] * len(chunk))} RETURNING id, enqueued_at",
                        params,
                    )
                # Ids grow in VALUES order on every engine, while RETURNING
                # promises no order: sorting by id gives the rows' order back.
                returned = sorted((int(id_), at) for id_, at in cursor.fetchall())
                if len(returned) != len(chunk):
                    raise DatabaseError(
                        f"INSERT of {len(chunk)} tasks returned {len(returned)} rows."
                    )
                found += [(id_, _required(read_datetime(at))) for id_, at in returned]
            if self.vendor.name == "postgresql":
                for queue in sorted({new.queue_name for new in rows}):
                    cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, queue])
            self._wake_local({new.queue_name for new in rows})
        return found

    def _wake_local(self, queues: Iterable[str]) -> None:
        """Once the enqueue commits, wake this host's idle workers (see ``wakeup``).

        PostgreSQL's NOTIFY already does that for every host.
        """
        if self.vendor.name == "postgresql":
            return
        waker = self._waker
        # Runs at once outside a transaction; after the commit inside one, and
        # never if it rolls back.
        self.connection.on_commit(lambda: waker.wake(queues))

    @cached_property
    def _waker(self) -> Waker:
        return waker_for(wake_key(self.connection.settings_dict, self.vendor.name))

    @cached_property
    def _row_values(self) -> str:
        """The VALUES tuple of one new task (parameters from ``_row_params``)."""
        vendor = self.vendor
        # available_at: the requested run_after, or now. Both timestamps come from
        # one evaluation of the clock per statement on every engine.
        return (
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
            f"COALESCE(%s, {vendor.now}), {vendor.now}, 0, "
            f"{vendor.json_param}, {vendor.json_param}, {vendor.json_param}, {vendor.json_param})"
        )

    def _array_params(self, chunk: Sequence[NewTask]) -> list[list[Any]]:
        """The arrays of ``_INSERT_FROM_ARRAYS``, one list per column."""
        adapt = self.connection.ops.adapt_datetimefield_value
        return [
            [new.task_path for new in chunk],
            [new.backend for new in chunk],
            [new.queue_name for new in chunk],
            [new.priority for new in chunk],
            [new.is_async for new in chunk],
            [new.max_attempts for new in chunk],
            [new.timeout for new in chunk],
            [None if new.run_after is None else adapt(new.run_after) for new in chunk],
            [new.args_json for new in chunk],
            [new.kwargs_json for new in chunk],
        ]

    def _row_params(self, new: NewTask) -> list[Any]:
        run_after = (
            None
            if new.run_after is None
            else self.connection.ops.adapt_datetimefield_value(new.run_after)
        )
        return [
            new.task_path, new.backend, new.queue_name, new.priority, State.READY, new.is_async,
            new.max_attempts, new.timeout, run_after, run_after,
            "[]", new.args_json, new.kwargs_json, "[]",
        ]  # fmt: skip

    # -- claim ----------------------------------------------------------------

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

        Each claimed row becomes RUNNING with ``attempt + 1`` (its new fencing
        token), a lease until now + ``lease_seconds``, and ``worker_id`` appended
        to ``worker_ids``. Concurrent claimers never receive the same row.
        ``is_async`` restricts the claim to async (True) or sync (False) tasks,
        for a worker that has room for only one kind.
        """
        if limit < 1 or queues.empty:
            return []
        vendor = self.vendor
        if not vendor.claims_in_one_statement:
            return self._claim_without_returning(worker_id, queues, is_async, limit, lease_seconds)
        pick, pick_params = self._pick(queues, is_async, limit)
        assignments, assign_params = self._claim_assignments(worker_id, lease_seconds)

        if vendor.name == "postgresql":
            # The CTE is MATERIALIZED so the LIMIT is applied once: inlined as a
            # semi-join, PostgreSQL may re-run the subquery and claim more rows.
            # SKIP LOCKED makes concurrent claimers take disjoint rows, not wait.
            sql = (
                f"WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) "
                f"UPDATE {TABLE} AS t SET {assignments} FROM picked WHERE t.id = picked.id "
                f"RETURNING {', '.join('t.' + c for c in _CLAIMED_COLUMNS.split(', '))}"
            )
            rows = self._fetch(sql, [*pick_params, *assign_params])
        else:
            # One UPDATE statement on SQLite takes the database's write lock before
            # it reads anything, so the statement is itself an immediate write
            # transaction: no other writer can claim between the SELECT and the
            # UPDATE, and there is no read-to-write upgrade to fail with BUSY.
            sql = (
                f"UPDATE {TABLE} SET {assignments} WHERE id IN ({pick}) "
                f"RETURNING {_CLAIMED_COLUMNS}"
            )
            rows = self._fetch(sql, [*assign_params, *pick_params])
        claimed = [ClaimedTask.from_row(row) for row in rows]
        # RETURNING gives no order; run them in the order they were picked.
        claimed.sort(key=lambda task: task.claim_order)
        return claimed

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
            pick, pick_params = self._pick(
                queues, is_async, wanted, columns=f"{_CLAIMED_COLUMNS}, {vendor.now}"
            )
            rows = self._fetch(pick, pick_params)
            if not rows:
                break
            now = rows[0][-1]
            found = len(rows)
            assignments, assign_params = self._claim_assignments(worker_id, lease_seconds, now)
            read, read_params = _by_attempt([(row[0], row[_AT["attempt"]]) for row in rows])
            with self.connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {TABLE} SET {assignments} WHERE status = %s AND {read}",
                    [*assign_params, State.READY, *read_params],
                )
                won = cursor.rowcount
            if 0 < won < len(rows):
                took, took_params = _by_attempt([(row[0], row[_AT["attempt"]] + 1) for row in rows])
                mine = {
                    row[0]
                    for row in self._fetch(
                        f"SELECT id FROM {TABLE} WHERE status = %s AND lease_owner = %s AND {took}",
                        [State.RUNNING, worker_id, *took_params],
                    )
                }
                rows = [row for row in rows if row[0] in mine]
            elif won == 0:
                rows = []
            taken += [ClaimedTask.from_row(_as_claimed(row, worker_id, now)) for row in rows]
            if found < wanted:
                break  # every due task was read: there is no more to try for
        return taken

    def _claim_assignments(
        self, worker_id: str, lease_seconds: float, now: Any = None
    ) -> tuple[str, list[Any]]:
        """The SET clause that claims a row, and its parameters. ``now`` is a
        time already read from the database's clock (the claim without
        RETURNING writes the one it read); None: the clock at the write."""
        vendor = self.vendor
        at, at_params = (vendor.now, []) if now is None else ("%s", [now])
        assignments = (
            "status = %s, attempt = attempt + 1, lease_owner = %s, "
            f"lease_expires_at = {vendor.now_plus_seconds}, "
            f"started_at = COALESCE(started_at, {at}), last_attempted_at = {at}, "
            f"worker_ids = {vendor.append_string.format(col='worker_ids')}"
        )
        return assignments, [State.RUNNING, worker_id, lease_seconds, *at_params, *at_params,
                             worker_id]  # fmt: skip

    def _pick(
        self, queues: QueueFilter, is_async: bool | None, limit: int, columns: str = "id"
    ) -> tuple[str, list[Any]]:
        """The SELECT of the tasks a claim takes (``columns`` of each), in claim
        order, and its parameters."""
        queue_sql, queue_params = queues.sql()
        # The kind is a filter after the claim index, not part of it: adding it
        # to the index would split every queue's order in two and force a sort.
        # Async tasks alone have a partial index of their own (where the
        # engine has them), which the planner uses only when the query states
        # its condition in the same terms, so they are written as constants
        # (from this module: nothing from outside goes into the SQL).
        status_sql, status_params, table = "status = %s", [State.READY], TABLE
        kind_sql = "" if is_async is None else " AND is_async = %s"
        kind_params: list[Any] = [] if is_async is None else [is_async]
        if is_async and self.vendor.async_only is not None:
            status_sql, status_params = f"status = '{State.READY.value}'", []
            kind_sql, kind_params = f" AND {self.vendor.async_only}", []
            hint = self.vendor.use_index.format(index=ASYNC_CLAIM_INDEX)
            table = f"{TABLE} {hint}" if hint else TABLE
        # A queue an operator paused (a row of offload_queue with paused_at set)
        # is skipped here, in the claim itself, so a pause takes effect for
        # every worker at its next claim with no message to deliver. The
        # subquery reads a handful of rows and takes no locks.
        sql = (
            f"SELECT {columns} FROM {table} WHERE {status_sql}{queue_sql}{kind_sql} "
            f"AND available_at <= {self.vendor.now}{_NOT_PAUSED} "
            f"ORDER BY {_CLAIM_ORDER} LIMIT %s"
        )
        return sql, [*status_params, *queue_params, *kind_params, limit]

    def explain_claim(
        self, queues: QueueFilter = ALL_QUEUES, *, is_async: bool | None = False, limit: int = 10
    ) -> list[str]:
        """The database's plan for a claim's SELECT, one line per row of EXPLAIN.

        For operators and the benchmark: the claim must stay an ordered index
        scan that stops after ``limit`` rows, however many tasks wait or have
        finished. A sort here would cost time in proportion to the backlog.
        """
        return self._explain(*self._pick(queues, is_async, limit))

    def _explain(self, sql: str, params: list[Any]) -> list[str]:
        prefix = {"sqlite": "EXPLAIN QUERY PLAN", "mysql": "EXPLAIN"}.get(
            self.connection.vendor, "EXPLAIN"
        )
        rows = self._fetch(f"{prefix} {sql}", params)
        return [" | ".join("" if value is None else str(value) for value in row) for row in rows]

    # -- finish -----------------------------------------------------------------

    def complete(self, task_id: int, attempt: int, return_json: str) -> bool:
        """Record success of ``attempt``; False if that attempt no longer holds the task."""
        vendor = self.vendor
        return self._fenced(
            f"status = %s, finished_at = {vendor.now}, return_value = {vendor.json_param}, "
            "lease_owner = NULL, lease_expires_at = NULL",
            [State.SUCCESSFUL, return_json],
            task_id,
            attempt,
        )

    def complete_many(self, done: Sequence[tuple[int, int, str]]) -> set[int]:
        """Record the success of many attempts, ``(id, attempt, return_json)`` each,
        in one statement; return the ids whose attempt is recorded as a success
        (the others lost their claim).

        One statement, so one commit, for a whole batch of outcomes: a worker
        with tiny tasks otherwise pays a commit (a WAL flush on PostgreSQL) per
        task, which is most of a drain's database time. Every row is fenced by
        its own attempt and RUNNING, as :meth:`complete` fences one.
        """
        if not done:
            return set()
        vendor = self.vendor
        assignments = (
            f"status = %s, finished_at = {vendor.now}, lease_owner = NULL, lease_expires_at = NULL"
        )
        if vendor.name == "postgresql":
            # Arrays, as in the bulk insert: three parameters whatever the batch.
            sql = (
                f"UPDATE {TABLE} AS t SET {assignments}, return_value = d.value::jsonb "
                "FROM unnest(%s::bigint[], %s::integer[], %s::text[]) AS d(id, attempt, value) "
                "WHERE t.id = d.id AND t.attempt = d.attempt AND t.status = %s RETURNING t.id"
            )
            ids, attempts, values = (list(column) for column in zip(*done, strict=True))
            rows = self._fetch(sql, [State.SUCCESSFUL, ids, attempts, values, State.RUNNING])
            return {row[0] for row in rows}
        # SQLite and MariaDB: a CASE on the id picks each row's value, and the
        # WHERE clause fences every row by its attempt.
        whens = " ".join(["WHEN %s THEN %s"] * len(done))
        fenced, fenced_params = _by_attempt([(row[0], row[1]) for row in done])
        where = f"status = %s AND {fenced}"
        fence_params: list[Any] = [State.RUNNING, *fenced_params]
        sql = f"UPDATE {TABLE} SET {assignments}, return_value = CASE id {whens} END WHERE {where}"
        params = [State.SUCCESSFUL, *(part for row in done for part in (row[0], row[2]))]
        if vendor.name == "sqlite":
            return {row[0] for row in self._fetch(f"{sql} RETURNING id", params + fence_params)}
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params + fence_params)
            if cursor.rowcount == len(done):
                return {row[0] for row in done}
        # MariaDB has no UPDATE ... RETURNING. Only when some row was not
        # written (rare: its claim was lost) are the written ones read back: a
        # row holds this attempt and SUCCESSFUL only if this worker wrote it
        # (here, or in a try whose reply was lost), since the attempt number is
        # this worker's fencing token.
        fence_params[0] = State.SUCCESSFUL
        rows = self._fetch(f"SELECT id FROM {TABLE} WHERE {where}", fence_params)
        return {row[0] for row in rows}

    def fail(self, task_id: int, attempt: int, errors_json: str) -> bool:
        """Record final failure of ``attempt`` with the task's full error history."""
        vendor = self.vendor
        return self._fenced(
            f"status = %s, finished_at = {vendor.now}, errors = {vendor.json_param}, "
            "lease_owner = NULL, lease_expires_at = NULL",
            [State.FAILED, errors_json],
            task_id,
            attempt,
        )

    def release(self, task_id: int, attempt: int, *, started: bool = True) -> bool:
        """Give a claimed task back (READY, due now) without recording an outcome.

        A task that never ``started`` is unclaimed: its attempt count and worker
        list go back to what they were, so the claim costs it nothing (no retry
        budget, and ``context.attempt`` stays right). Reusing that attempt number
        is safe: this worker never started the task, so it has nothing to write.
        A task that started keeps the attempt: it may have done part of its work.
        """
        vendor = self.vendor
        unclaim = "" if started else self._unclaim_sql()
        return self._fenced(
            f"status = %s, available_at = {vendor.now}, "
            f"lease_owner = NULL, lease_expires_at = NULL{unclaim}",
            [State.READY],
            task_id,
            attempt,
        )

    def _unclaim_sql(self) -> str:
        # MariaDB applies SET assignments left to right, each seeing the ones
        # before: the worker list is trimmed before attempt changes.
        return (
            f", worker_ids = {self.vendor.pop_last.format(col='worker_ids')}, attempt = attempt - 1"
        )

    def release_owner(self, worker_id: str, *, unclaim: bool = False) -> int:
        """Give back every task ``worker_id`` holds; for a worker process known to be dead.

        Not fenced by attempt: the caller saw the process exit, so nothing of
        that lease owner can still write. With ``unclaim``, the tasks are known
        not to have started (see :meth:`release`). Returns how many went back.
        """
        vendor = self.vendor
        sql = (
            f"UPDATE {TABLE} SET status = %s, available_at = {vendor.now}, "
            f"lease_owner = NULL, lease_expires_at = NULL{self._unclaim_sql() if unclaim else ''} "
            "WHERE status = %s AND lease_owner = %s"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [State.READY, State.RUNNING, worker_id])
            return int(cursor.rowcount)

    # -- progress -------------------------------------------------------------------

    def write_progress(self, reports: dict[tuple[int, int], Progress]) -> int:
        """Write the latest progress of running attempts, keyed by (id, attempt).

        One statement for all of them, whatever their number (the dispatcher
        writes what changed since its last write): a CASE on the id picks each
        row's values, and the WHERE clause fences every row by its attempt and
        RUNNING, so a report of an attempt that no longer holds its task is
        dropped. ``progress_at`` is the database's clock. Returns the rows written.
        """
        if not reports:
            return 0
        vendor = self.vendor
        values: dict[str, list[Any]] = {"current": [], "total": [], "message": []}
        for (task_id, _), progress in reports.items():
            values["current"] += [task_id, progress.current]
            values["total"] += [task_id, progress.total]
            values["message"] += [task_id, progress.message]
        whens = " ".join(["WHEN %s THEN %s"] * len(reports))
        fenced, fenced_params = _by_attempt(list(reports))
        # The CASE values are cast so every engine types the column the same
        # way whatever the parameters (NULL totals, integers in a float column).
        sql = (
            f"UPDATE {TABLE} SET "
            f"progress_current = CAST(CASE id {whens} END AS {vendor.float_type}), "
            f"progress_total = CAST(CASE id {whens} END AS {vendor.float_type}), "
            f"progress_message = CASE id {whens} END, "
            f"progress_at = {vendor.now} "
            f"WHERE status = %s AND {fenced}"
        )
        params: list[Any] = [
            *values["current"], *values["total"], *values["message"], State.RUNNING,
            *fenced_params,
        ]  # fmt: skip
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    # -- retries, crashes and rescue --------------------------------------------------

    def retry(self, task_id: int, attempt: int, errors_json: str, delay: float) -> bool:
        """Record a failed ``attempt`` that gets another one, due in ``delay`` seconds."""
        vendor = self.vendor
        return self._fenced(
            f"status = %s, available_at = {vendor.now_plus_seconds}, "
            f"errors = {vendor.json_param}, lease_owner = NULL, lease_expires_at = NULL",
            [State.READY, delay, errors_json],
            task_id,
            attempt,
        )

    def cancelled(self, task_id: int, attempt: int, error_json: str) -> bool:
        """Record that running ``attempt`` stopped because it was cancelled.

        ``error_json`` (one error record) joins the task's history.
        """
        vendor = self.vendor
        return self._fenced(
            f"status = %s, finished_at = {vendor.now}, "
            f"errors = {vendor.append_json.format(col='errors')}, "
            "lease_owner = NULL, lease_expires_at = NULL",
            [State.CANCELLED, error_json],
            task_id,
            attempt,
        )

    def attempt_lost(
        self,
        task_id: int,
        attempt: int,
        error_json: str,
        delay: float,
        *,
        expired_only: bool = False,
    ) -> bool:
        """End an attempt that never reached a verdict (crash, kill, timeout, lost lease).

        It is tried again in ``delay`` seconds while attempts remain, else it is
        FAILED; ``error_json`` joins its history either way. The choice is made
        in SQL from the row's own ``max_attempts``, so the caller need not import
        the task. ``expired_only`` (the rescue) also requires the lease to have
        expired, so a heartbeat that renewed it just now wins.
        """
        vendor = self.vendor
        spent = "attempt >= max_attempts"
        sql = (
            f"UPDATE {TABLE} SET "
            f"status = CASE WHEN {spent} THEN %s ELSE %s END, "
            f"finished_at = CASE WHEN {spent} THEN {vendor.now} ELSE NULL END, "
            f"available_at = CASE WHEN {spent} THEN available_at "
            f"ELSE {vendor.now_plus_seconds} END, "
            f"errors = {vendor.append_json.format(col='errors')}, "
            "lease_owner = NULL, lease_expires_at = NULL "
            "WHERE id = %s AND attempt = %s AND status = %s"
        )
        params: list[Any] = [
            State.FAILED, State.READY, delay, error_json, task_id, attempt, State.RUNNING,
        ]  # fmt: skip
        if expired_only:
            sql += f" AND lease_expires_at < {vendor.now}"
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return bool(cursor.rowcount == 1)

    def expired_leases(self, limit: int) -> list[tuple[int, int, int, str | None]]:
        """RUNNING tasks whose lease has expired: (id, attempt, max_attempts, owner)."""
        rows = self._fetch(self._expired_select(), [limit])
        return [(int(a), int(b), int(c), d) for a, b, c, d in rows]

    def _expired_select(self) -> str:
        # The status is a constant in the SQL, as the partial index of running
        # leases states it: SQLite uses a partial index only for a query whose
        # terms imply the index's condition, which a bound parameter cannot.
        return (
            f"SELECT id, attempt, max_attempts, lease_owner FROM {TABLE} "
            f"WHERE status = '{State.RUNNING.value}' AND lease_expires_at < {self.vendor.now} "
            "ORDER BY lease_expires_at LIMIT %s"
        )

    def explain_rescue(self, limit: int = 100) -> list[str]:
        """The plan of the rescue's search for expired leases (see ``explain_claim``)."""
        return self._explain(self._expired_select(), [limit])

    # -- heartbeats and workers --------------------------------------------------------

    def heartbeat(self, worker_id: str, lease_seconds: float) -> Heartbeat | None:
        """Renew the leases of ``worker_id``'s tasks and its worker row.

        Returns every task the database says ``worker_id`` holds (for the worker
        to compare with what it knows it holds) and those whose cancellation
        was requested, or None if its worker row is gone (forgotten after a
        long silence): register again.
        """
        vendor = self.vendor
        with atomic_on(self.connection), self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET lease_expires_at = {vendor.now_plus_seconds} "
                "WHERE status = %s AND lease_owner = %s",
                [lease_seconds, State.RUNNING, worker_id],
            )
            cursor.execute(
                f"UPDATE {WORKER_TABLE} SET heartbeat_at = {vendor.now} WHERE id = %s", [worker_id]
            )
            if cursor.rowcount != 1:
                return None
            cursor.execute(
                f"SELECT id, attempt, cancel_requested_at FROM {TABLE} "
                "WHERE status = %s AND lease_owner = %s",
                [State.RUNNING, worker_id],
            )
            rows = cursor.fetchall()
        return Heartbeat(
            held={int(id_): int(attempt) for id_, attempt, _ in rows},
            cancels=[int(id_) for id_, _, cancel in rows if cancel is not None],
        )

    def register_worker(
        self, *, worker_id: str, name: str, hostname: str, pid: int, supervisor_pid: int,
        backend: str, queues: str, threads: int,
    ) -> None:  # fmt: skip
        """Insert (or refresh) the row that shows ``worker_id`` is alive."""
        vendor = self.vendor
        with atomic_on(self.connection), self.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {WORKER_TABLE} WHERE id = %s", [worker_id])
            cursor.execute(
                f"INSERT INTO {WORKER_TABLE} (id, name, hostname, pid, supervisor_pid, backend, "
                "queues, threads, started_at, heartbeat_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {vendor.now}, {vendor.now})",
                [worker_id, name, hostname[:255], pid, supervisor_pid, backend, queues[:1000],
                 threads],
            )  # fmt: skip

    def forget_worker(self, worker_id: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {WORKER_TABLE} WHERE id = %s", [worker_id])

    def forget_silent_workers(self, seconds: float) -> int:
        """Delete worker rows with no heartbeat for ``seconds``; their leases lapse alone."""
        vendor = self.vendor
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {WORKER_TABLE} WHERE heartbeat_at < {vendor.now_plus_seconds}",
                [-seconds],
            )
            return int(cursor.rowcount)

    def hold_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or keep the role ``name`` for ``seconds``; False if another owner holds it.

        One UPDATE decides between contenders (the row lock serialises them);
        the INSERT covers the first time, and a unique-key clash there means
        another owner got in first.
        """
        vendor = self.vendor
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {LEASE_TABLE} SET owner = %s, expires_at = {vendor.now_plus_seconds} "
                f"WHERE name = %s AND (owner = %s OR expires_at < {vendor.now})",
                [owner, seconds, name, owner],
            )
            if cursor.rowcount == 1:
                return True
            cursor.execute(f"SELECT 1 FROM {LEASE_TABLE} WHERE name = %s", [name])
            if cursor.fetchone() is not None:
                return False
        try:
            with atomic_on(self.connection), self.connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {LEASE_TABLE} (name, owner, expires_at) "
                    f"VALUES (%s, %s, {vendor.now_plus_seconds})",
                    [name, owner, seconds],
                )
        except IntegrityError:
            return False
        return True

    def drop_lease(self, name: str, owner: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {LEASE_TABLE} WHERE name = %s AND owner = %s", [name, owner]
            )

    # -- cancel -------------------------------------------------------------------

    def cancel(self, task_ids: Sequence[int], error_json: str) -> tuple[list[int], list[int]]:
        """Cancel READY tasks at once and ask RUNNING ones to stop.

        Returns (ids now CANCELLED, ids whose cancellation was requested). A
        READY task is never claimed after this commits: both statements test the
        status, so a task claimed in between is treated as RUNNING instead.
        ``error_json`` is the error appended to a cancelled task's history.
        """
        if not task_ids:
            return [], []
        vendor = self.vendor
        marks = ", ".join(["%s"] * len(task_ids))
        with atomic_on(self.connection):
            ready = [
                int(row[0])
                for row in self._fetch(
                    f"SELECT id FROM {TABLE} WHERE id IN ({marks}) AND status = %s"
                    f"{vendor.lock_rows}",
                    [*task_ids, State.READY],
                )
            ]
            if ready:
                ready_marks = ", ".join(["%s"] * len(ready))
                with self.connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {TABLE} SET status = %s, finished_at = {vendor.now}, "
                        f"errors = {vendor.append_json.format(col='errors')} "
                        f"WHERE id IN ({ready_marks}) AND status = %s",
                        [State.CANCELLED, error_json, *ready, State.READY],
                    )
            running = [
                int(row[0])
                for row in self._fetch(
                    f"SELECT id FROM {TABLE} WHERE id IN ({marks}) AND status = %s",
                    [*task_ids, State.RUNNING],
                )
            ]
            if running:
                running_marks = ", ".join(["%s"] * len(running))
                with self.connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {TABLE} SET cancel_requested_at = "
                        f"COALESCE(cancel_requested_at, {vendor.now}) "
                        f"WHERE id IN ({running_marks}) AND status = %s",
                        [*running, State.RUNNING],
                    )
        return ready, running

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
            f"WHERE status = %s{queue_sql}{_NOT_PAUSED}"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [State.READY, *queue_params])
            due, now = cursor.fetchone()
        if due is None:
            return None
        return (_required(read_datetime(due)) - _required(read_datetime(now))).total_seconds()

    def _fenced(self, assignments: str, params: list[Any], task_id: int, attempt: int) -> bool:
        sql = f"UPDATE {TABLE} SET {assignments} WHERE id = %s AND attempt = %s AND status = %s"
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [*params, task_id, attempt, State.RUNNING])
            return bool(cursor.rowcount == 1)

    # -- helpers ------------------------------------------------------------------

    def _fetch(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            return list(cursor.fetchall())
