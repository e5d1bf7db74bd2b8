"""New tasks: the INSERT of one task and of a batch, each announced to the
workers, and of one task with a concurrency key or a rate key, past its
key's gate."""

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from django.db import DatabaseError

from offload.states import State
from offload.store.announce import notify_params
from offload.store.base import TABLE, required
from offload.store.connection import atomic_on, fetch_one
from offload.store.rate_gate import RateGateStore
from offload.store.rows import NewTask
from offload.store.vendor import Vendor, read_datetime

# The columns every INSERT of a new task fills, in the order of ``row_values``
# and ``EnqueueStore._row_params``.
INSERT_COLUMNS = (
    "(task_path, backend, queue_name, priority, status, is_async, max_attempts, timeout, "
    "run_after, available_at, enqueued_at, attempt, worker_ids, args, kwargs, errors, "
    "trace_context)"
)


def row_values(vendor: Vendor) -> str:
    """The VALUES tuple of one new task."""
    # available_at: the requested run_after, or now. Both timestamps come from
    # one evaluation of the clock per statement on every engine.
    return (
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
        f"COALESCE(%s, {vendor.now}), {vendor.now}, 0, "
        f"{vendor.json_param}, {vendor.json_param}, {vendor.json_param}, {vendor.json_param}, "
        f"{vendor.json_param})"
    )


def insert_one(vendor: Vendor) -> str:
    """The statement of ``enqueue``: the same for every task."""
    values = row_values(vendor)
    insert = f"INSERT INTO {TABLE} {INSERT_COLUMNS} VALUES {values} RETURNING id, enqueued_at"
    if vendor.insert_and_notify is not None:
        return vendor.insert_and_notify.format(insert=insert)
    return insert


def insert_many(vendor: Vendor, rows: int) -> str:
    """The statement of a chunk of ``rows`` tasks in ``enqueue_many``."""
    if vendor.insert_from_arrays is not None:
        return vendor.insert_from_arrays.format(table=TABLE, columns=INSERT_COLUMNS)
    values = ", ".join([row_values(vendor)] * rows)
    return f"INSERT INTO {TABLE} {INSERT_COLUMNS} VALUES {values} RETURNING id, enqueued_at"


def insert_limited(vendor: Vendor) -> str:
    """The INSERT of one task with a concurrency key: its status is the gate's
    verdict (a parameter), and it sends no NOTIFY (a blocked task wakes nobody)."""
    columns = INSERT_COLUMNS[:-1] + ", concurrency_key, concurrency_limit)"
    values = row_values(vendor)[:-1] + ", %s, %s)"
    return f"INSERT INTO {TABLE} {columns} VALUES {values} RETURNING id, enqueued_at"


def insert_rated(vendor: Vendor) -> str:
    """The INSERT of one task with a rate key: its status is the rate gate's
    verdict (a parameter), and it sends no NOTIFY (a blocked task wakes nobody)."""
    columns = INSERT_COLUMNS[:-1] + ", rate_key, rate_count, rate_period)"
    values = row_values(vendor)[:-1] + ", %s, %s, %s)"
    return f"INSERT INTO {TABLE} {columns} VALUES {values} RETURNING id, enqueued_at"


class EnqueueStore(RateGateStore):
    def enqueue(self, new: NewTask) -> tuple[int, datetime]:
        """Insert one READY task; return its id and enqueue time (database clock)."""
        params = self._row_params(new)
        if self.vendor.insert_and_notify is not None:
            params += notify_params(new.queue_name)
        task_id, enqueued_at, *_ = fetch_one(self.connection, self._insert_one, params)
        self.announcer.announce(self.connection, (new.queue_name,), notified=True)
        return int(task_id), required(read_datetime(enqueued_at))

    def enqueue_limited(self, new: NewTask) -> tuple[int, datetime]:
        """Insert one task with a concurrency key: READY if its key has room,
        else BLOCKED (see ``store.gate``); return its id and enqueue time.

        The key's lock, the count and the INSERT are one transaction (a
        savepoint of the caller's, if one is open).
        """
        limit = new.limit
        if limit is None:
            raise ValueError("enqueue_limited takes a task with a concurrency key")
        nested = self.connection.in_atomic_block

        def status() -> State:
            return self.gate(new.backend, limit.key, limit.limit, nested)

        return self._insert_gated(
            new, status, insert_limited(self.vendor), [limit.key, limit.limit]
        )

    def enqueue_rated(self, new: NewTask) -> tuple[int, datetime]:
        """Insert one task with a rate key: READY if its key's window has
        room, else BLOCKED (see ``store.rate_gate``); return its id and
        enqueue time. A task due later (``run_after``) is BLOCKED until due,
        so it holds no slot of the window meanwhile.

        The key's lock, the count and the INSERT are one transaction (a
        savepoint of the caller's, if one is open).
        """
        rate = new.rate
        if rate is None:
            raise ValueError("enqueue_rated takes a task with a rate key")
        nested = self.connection.in_atomic_block

        def status() -> State:
            found = self.rate_gate(new.backend, rate.key, rate.count, rate.period, nested)
            return State.BLOCKED if new.run_after is not None else found

        return self._insert_gated(
            new, status, insert_rated(self.vendor), [rate.key, rate.count, rate.period]
        )

    def _insert_gated(
        self, new: NewTask, gate: Callable[[], State], sql: str, extra: list[Any]
    ) -> tuple[int, datetime]:
        """Insert ``new`` with the state ``gate`` decides (the key's lock taken
        and its count read in the same transaction, a savepoint of the caller's
        if one is open), ``extra`` the parameters after the common columns;
        announce it if READY. Return its id and enqueue time."""
        with atomic_on(self.connection):
            status = gate()
            params = [*self._row_params(new, status), *extra]
            task_id, enqueued_at, *_ = fetch_one(self.connection, sql, params)
            if status == State.READY:
                self.announcer.announce(self.connection, (new.queue_name,))
        return int(task_id), required(read_datetime(enqueued_at))

    @cached_property
    def _insert_one(self) -> str:
        return insert_one(self.vendor)

    def enqueue_many(self, rows: Sequence[NewTask], chunk_size: int) -> list[tuple[int, datetime]]:
        """Insert READY tasks, ``chunk_size`` rows per INSERT, all in one transaction.

        Returns (id, enqueue time) for each row, in the order given. Either every
        row is inserted or none is. Each queue is announced once for the whole
        batch, at commit.
        """
        if not rows:
            return []
        # Never more placeholders in one statement than the driver accepts.
        per_row = len(self._row_params(rows[0]))
        most = getattr(self.connection.features, "max_query_params", None)
        if most:
            chunk_size = max(1, min(chunk_size, most // per_row))
        arrays = self.vendor.insert_from_arrays is not None
        found: list[tuple[int, datetime]] = []
        with atomic_on(self.connection), self.connection.cursor() as cursor:
            for start in range(0, len(rows), chunk_size):
                chunk = rows[start : start + chunk_size]
                params: list[Any] = []
                if arrays:
                    params = [State.READY, *self._array_params(chunk)]
                else:
                    for new in chunk:
                        params += self._row_params(new)
                cursor.execute(insert_many(self.vendor, len(chunk)), params)
                # Ids grow in VALUES order on every engine, while RETURNING
                # promises no order: sorting by id gives the rows' order back.
                returned = sorted((int(id_), at) for id_, at in cursor.fetchall())
                if len(returned) != len(chunk):
                    raise DatabaseError(
                        f"INSERT of {len(chunk)} tasks returned {len(returned)} rows."
                    )
                found += [(id_, required(read_datetime(at))) for id_, at in returned]
            self.announcer.announce(self.connection, {new.queue_name for new in rows})
        return found

    def _array_params(self, chunk: Sequence[NewTask]) -> list[list[Any]]:
        """The arrays of ``vendor.insert_from_arrays``, one list per column."""
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
            [new.trace_context for new in chunk],
        ]

    def _row_params(self, new: NewTask, status: State = State.READY) -> list[Any]:
        run_after = (
            None
            if new.run_after is None
            else self.connection.ops.adapt_datetimefield_value(new.run_after)
        )
        return [
            new.task_path, new.backend, new.queue_name, new.priority, status, new.is_async,
            new.max_attempts, new.timeout, run_after, run_after,
            "[]", new.args_json, new.kwargs_json, "[]", new.trace_context,
        ]  # fmt: skip
