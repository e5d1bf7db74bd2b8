"""What every part of the store shares: the connection, the engine, the fence.

Why the store is written this way:

* Raw SQL through Django's connection, not the ORM: the claim needs
  ``FOR UPDATE SKIP LOCKED`` inside an ``UPDATE ... RETURNING`` and the writes
  need JSON appends and the database's clock, none of which the ORM can say in
  one statement. Each call is one round trip where the engine allows it.
* Every write that ends or returns a claim is fenced (see :class:`Fence`):
  ``attempt`` is incremented by each claim, so a worker that was presumed dead
  (its task rescued and claimed again) finds no row to update, and its stale
  result is dropped instead of overwriting the newer attempt. Callers get a bool.
* Times come from the database's clock (see ``vendor``), never the host's.
* The statements run on whatever transaction state the connection is in: an
  enqueue inside the caller's ``atomic()`` joins it, so a rolled-back request
  enqueues nothing and no worker sees a task before it commits.
* Where engines differ in a statement's shape, ``vendor`` holds the whole
  statement; the modules here fill it in.
"""

import contextlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from offload.states import State
from offload.store.announce import Announcer
from offload.store.vendor import Vendor, read_datetime, vendor_for

TABLE = "offload_task"
WORKER_TABLE = "offload_worker"
LEASE_TABLE = "offload_lease"


class Fence:
    """The WHERE terms that fence a write by attempt: the one way it is written.

    A row is written only while it holds the attempt the writer was given and
    the status the writer expects (RUNNING for an outcome, READY for the
    MariaDB claim's write), so a worker whose attempt was rescued and claimed
    again writes nothing. Each method returns the terms and their parameters.
    """

    ONE = "id = %s AND attempt = %s AND status = %s"

    @staticmethod
    def one(task_id: int, attempt: int, status: State = State.RUNNING) -> tuple[str, list[Any]]:
        """One row: ``id = %s AND attempt = %s AND status = %s``."""
        return Fence.ONE, [task_id, attempt, status]

    @staticmethod
    def each(
        pairs: Sequence[tuple[int, int]], status: State = State.RUNNING, owner: str | None = None
    ) -> tuple[str, list[Any]]:
        """Many rows, each by its own ``(id, attempt)``: ``status = %s [AND
        lease_owner = %s] AND id IN (...) AND ((id = %s AND attempt = %s) OR
        ...)``; the id list is there so the primary key finds the rows."""
        marks = ", ".join(["%s"] * len(pairs))
        fences = " OR ".join(["(id = %s AND attempt = %s)"] * len(pairs))
        owned, owner_params = ("", []) if owner is None else (" AND lease_owner = %s", [owner])
        params: list[Any] = [status, *owner_params, *(pair[0] for pair in pairs)]
        for task_id, attempt in pairs:
            params += [task_id, attempt]
        return f"status = %s{owned} AND id IN ({marks}) AND ({fences})", params

    @staticmethod
    def joined(status: State = State.RUNNING) -> tuple[str, list[Any]]:
        """Rows ``t`` of the task table joined to given rows ``d`` (id, attempt)."""
        return "t.id = d.id AND t.attempt = d.attempt AND t.status = %s", [status]


def fenced_update(assignments: str) -> str:
    """``UPDATE`` of one task row, fenced by its attempt and status (:meth:`Fence.one`)."""
    return f"UPDATE {TABLE} SET {assignments} WHERE {Fence.ONE}"


def required(value: datetime | None) -> datetime:
    if value is None:
        raise ValueError("A task is missing a timestamp the store sets.")
    return value


def database_now(connection: BaseDatabaseWrapper) -> datetime:
    """The database server's current time, aware, in UTC."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {vendor_for(connection).now}", [])
        value = read_datetime(cursor.fetchone()[0])
    if value is None:
        raise ValueError("The database returned no time.")
    return value


class StoreBase:
    """The store's tables on one database alias.

    By default it uses Django's shared connection for the alias (so an enqueue
    joins the caller's transaction); a worker passes its private connection.
    """

    def __init__(self, alias: str, connection: BaseDatabaseWrapper | None = None) -> None:
        self.alias = alias
        self._connection = connection

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return self._connection or connections[self.alias]

    @cached_property
    def vendor(self) -> Vendor:
        # An alias never changes engine; asking once keeps the check (which may
        # query the server's version) off the hot path.
        return vendor_for(self.connection)

    @cached_property
    def announcer(self) -> Announcer:
        """How this store wakes the workers when it makes tasks READY."""
        return Announcer(self.vendor, self.connection.settings_dict)

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

    def database_now(self) -> datetime:
        """The database server's current time, aware, in UTC."""
        return database_now(self.connection)

    def _fenced(self, assignments: str, params: list[Any], task_id: int, attempt: int) -> bool:
        """``UPDATE ... SET assignments`` of one row, fenced by its attempt and RUNNING."""
        _, fence_params = Fence.one(task_id, attempt)
        return self._write(fenced_update(assignments), [*params, *fence_params]) == 1

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        """Run ``sql``; return the rows it wrote."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    def _fetch(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, list(params))
            return list(cursor.fetchall())

    def _explain(self, sql: str, params: list[Any]) -> list[str]:
        rows = self._fetch(f"{self.vendor.explain} {sql}", params)
        return [" | ".join("" if value is None else str(value) for value in row) for row in rows]
