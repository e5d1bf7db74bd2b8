"""The enqueue of a task with a unique key (see ``offload.uniqueness``).

The unique index on (backend, unique_key), offload_task_unique_key_uniq, is what allows
one holder per key, so the enqueue simply tries the INSERT: however many
processes enqueue the key at once, the database lets one row in and refuses
the others. Each try runs in a savepoint, so a refused one leaves the
caller's transaction as it was. On a refusal the holder is read, with a
read that sees the latest committed row whatever the transaction's snapshot
(``vendor.read_latest``), and returned to the caller, who decides what the
duplicate does; a holder whose period is over has its key cleared and the
INSERT is tried again, as is the INSERT when the holder let go of the key
between the refusal and the read.

A task enqueued without a key never comes here: its INSERT is the one of
``store.enqueue``, with neither the savepoint nor the extra columns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from offload.payload import decode
from offload.states import State
from offload.store.announce import notify_params
from offload.store.base import TABLE, required
from offload.store.connection import fetch_one
from offload.store.enqueue import INSERT_COLUMNS, EnqueueStore, row_values
from offload.store.rows import NewTask
from offload.store.vendor import Vendor, is_lock_conflict, read_datetime
from offload.uniqueness import PERIOD

# How many times an enqueue tries its INSERT again after a refusal whose
# holder was gone when read (claimed, finished, or its period over) or, outside
# a transaction, after a lock conflict. Each retry means another process
# changed the key's holder in between; past this many, the refusal is raised.
UNIQUE_TRIES = 8

HOLDER_COLUMNS = (
    "id, task_path, backend, queue_name, priority, run_after, status, unique_scope, "
    "enqueued_at, started_at, finished_at, last_attempted_at, args, kwargs, errors, "
    "worker_ids, return_value"
)


@dataclass(frozen=True, slots=True)
class Holder:
    """The task that holds a unique key, as read after an enqueue was refused."""

    id: int
    task_path: str
    backend: str
    queue_name: str
    priority: int
    run_after: datetime | None
    status: str
    scope: str
    # Scope "period": whether the period is over (the key is free to take).
    expired: bool
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_attempted_at: datetime | None
    args: list[Any]
    kwargs: dict[str, Any]
    errors: list[dict[str, Any]]
    worker_ids: list[str]
    return_value: Any

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Holder:
        (id_, path, backend, queue, priority, run_after, status, scope, expired, enqueued_at,
         started_at, finished_at, attempted_at, args, kwargs, errors, worker_ids,
         value) = row  # fmt: skip
        return cls(
            id=int(id_),
            task_path=path,
            backend=backend,
            queue_name=queue,
            priority=int(priority),
            run_after=read_datetime(run_after),
            status=str(status),
            scope=str(scope),
            expired=bool(expired),
            enqueued_at=required(read_datetime(enqueued_at)),
            started_at=read_datetime(started_at),
            finished_at=read_datetime(finished_at),
            last_attempted_at=read_datetime(attempted_at),
            args=decode(args),
            kwargs=decode(kwargs),
            errors=decode(errors),
            worker_ids=decode(worker_ids),
            return_value=None if value is None else decode(value),
        )


@functools.lru_cache(maxsize=8)
def insert_unique(vendor: Vendor, period: bool, limited: bool = False) -> str:
    """The INSERT of one task with a unique key (and the NOTIFY where there is one).

    ``period``: the key is held for a period, whose end is the database's
    clock plus one parameter (seconds); else ``unique_until`` is NULL.
    ``limited``: the task also has a concurrency key and limit (two more
    parameters), and the INSERT sends no NOTIFY (the gate may block it).
    """
    until = vendor.now_plus_seconds if period else "NULL"
    columns = INSERT_COLUMNS[:-1] + ", unique_key, unique_scope, unique_until"
    values = row_values(vendor)[:-1] + f", %s, %s, {until}"
    if limited:
        columns += ", concurrency_key, concurrency_limit"
        values += ", %s, %s"
    insert = f"INSERT INTO {TABLE} {columns}) VALUES {values}) RETURNING id, enqueued_at"
    if vendor.insert_and_notify is not None and not limited:
        return vendor.insert_and_notify.format(insert=insert)
    return insert


def holder_select(vendor: Vendor) -> str:
    """The read of a key's holder (parameters: backend, key)."""
    expired = f"CASE WHEN unique_until <= {vendor.now} THEN 1 ELSE 0 END"
    columns = HOLDER_COLUMNS.replace("unique_scope, ", f"unique_scope, {expired}, ")
    return (
        f"SELECT {columns} FROM {TABLE} WHERE backend = %s AND unique_key = %s{vendor.read_latest}"
    )


class UniqueStore(EnqueueStore):
    def enqueue_unique(self, new: NewTask) -> tuple[int, datetime] | Holder:
        """Insert ``new``, which has a unique key, unless another task holds the key.

        Returns the new task's (id, enqueue time), or the holder.
        """
        unique = new.unique
        if unique is None:
            raise ValueError("enqueue_unique takes a task with a unique key")
        params = [*self._row_params(new), unique.key, unique.scope]
        if unique.scope == PERIOD:
            params.append(unique.seconds)
        limit = new.limit
        if limit is not None:
            params += [limit.key, limit.limit]
        elif self.vendor.insert_and_notify is not None:
            params += notify_params(new.queue_name)
        sql = insert_unique(self.vendor, unique.scope == PERIOD, limit is not None)
        in_transaction = self.connection.in_atomic_block
        refusal: Exception | None = None
        for _ in range(UNIQUE_TRIES):
            try:
                with transaction.atomic(using=self.connection.alias):
                    if limit is not None:
                        # The gate inside the savepoint: a refused INSERT
                        # takes its key lock back with it.
                        params[4] = self.gate(new.backend, limit.key, limit.limit, in_transaction)
                    task_id, enqueued_at, *_ = fetch_one(self.connection, sql, params)
            except IntegrityError as exc:
                refusal = exc
            except Exception as exc:
                # MariaDB may pick one of several INSERTs waiting on one key
                # to lose a deadlock; alone in its transaction, it tries again.
                if in_transaction or not is_lock_conflict(exc):
                    raise
                refusal = exc
                continue
            else:
                if limit is None:
                    self.announcer.announce(self.connection, (new.queue_name,), notified=True)
                elif params[4] == State.READY:
                    self.announcer.announce(self.connection, (new.queue_name,))
                return int(task_id), required(read_datetime(enqueued_at))
            holder = self.unique_holder(new.backend, unique.key)
            if holder is None:
                continue  # let go of the key in between: try again
            if holder.scope == PERIOD and holder.expired:
                self._clear_expired(holder.id)
                continue
            return holder
        assert refusal is not None
        raise refusal

    def unique_holder(self, backend: str, key: str) -> Holder | None:
        """The task of ``backend`` that holds ``key``, or None."""
        rows = self._fetch(holder_select(self.vendor), [backend, key])
        return Holder.from_row(rows[0]) if rows else None

    def _clear_expired(self, task_id: int) -> None:
        """Release the key of a task whose period is over (if still so)."""
        self._write(
            f"UPDATE {TABLE} SET unique_key = NULL WHERE id = %s AND unique_scope = %s "
            f"AND unique_until <= {self.vendor.now}",
            [task_id, PERIOD],
        )

    def replace_waiting(self, holder: Holder, new: NewTask) -> bool:
        """Give ``holder``, if it still waits to run and holds its key, the
        arguments, queue, priority and ``run_after`` of ``new``; False if it
        no longer waits (it was claimed, or finished)."""
        vendor = self.vendor
        unique = new.unique
        if unique is None:
            raise ValueError("replace_waiting takes a task with a unique key")
        run_after = (
            None
            if new.run_after is None
            else self.connection.ops.adapt_datetimefield_value(new.run_after)
        )
        written = self._write(
            f"UPDATE {TABLE} SET args = {vendor.json_param}, kwargs = {vendor.json_param}, "
            f"queue_name = %s, priority = %s, run_after = %s, "
            f"available_at = COALESCE(%s, {vendor.now}) "
            # A holder waiting on a concurrency limit (BLOCKED) waits to run too.
            "WHERE id = %s AND status IN (%s, %s) AND backend = %s AND unique_key = %s",
            [
                new.args_json, new.kwargs_json, new.queue_name, new.priority, run_after,
                run_after, holder.id, State.READY, State.BLOCKED, new.backend, unique.key,
            ],
        )  # fmt: skip
        if written:
            self.announcer.announce(self.connection, (new.queue_name,))
        return bool(written)
