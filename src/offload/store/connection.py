"""The worker's own database connection, and the driver's cursor for the enqueue.

Task code gets Django's usual connection hygiene (``close_old_connections``
around each task, as around each request), which with the default
``CONN_MAX_AGE = 0`` means a new connection per task. The worker's own traffic
(claim, complete) must not pay that: it uses a private connection, opened from
the same settings but kept open, and checked for health before each use.

A private connection also means a task that leaves its connection in a broken
transaction cannot break the worker's next claim.
"""

import copy
import functools
import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.utils import load_backend

from offload.store.vendor import worker_session

# The connections open_private made with session statements, to tell them
# apart in connection_created.
_private: "weakref.WeakSet[BaseDatabaseWrapper]" = weakref.WeakSet()


def open_private(alias: str, *, session: bool = True) -> BaseDatabaseWrapper:
    """A connection to ``alias`` that Django's request hygiene does not close.

    With ``session``, each (re)connect runs the vendor's ``worker_session``
    statements; without, it keeps no session state of offload's (for a pooler
    in transaction mode, where a session setting would land on a server
    connection that other clients then draw). An in-memory SQLite database
    exists only inside its one connection, so there the shared connection is
    returned instead.
    """
    shared = connections[alias]
    if shared.vendor == "sqlite" and shared.is_in_memory_db():  # type: ignore[attr-defined]
        return shared
    settings_dict = copy.deepcopy(shared.settings_dict)
    # Persistent. No CONN_HEALTH_CHECKS: that would cost a "SELECT 1" before
    # every claim. A broken connection shows itself as a DatabaseError instead,
    # after which the worker loop closes it and reconnects (see worker.loop).
    settings_dict["CONN_MAX_AGE"] = None
    settings_dict["CONN_HEALTH_CHECKS"] = False
    # Never from Django's connection pool (OPTIONS["pool"], PostgreSQL): a pool
    # refuses persistent connections, and a pooled one held for the worker's
    # life would take a slot from the web processes for good and hand its
    # session (LISTEN, worker_session's settings) to whoever drew it next.
    settings_dict["OPTIONS"].pop("pool", None)
    wrapper: BaseDatabaseWrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(
        settings_dict, alias
    )
    # Django sends connection_created on every (re)connect, so the session
    # settings come back after a reconnect too. Connected here, on first use.
    connection_created.connect(_set_up_session, dispatch_uid="offload.worker_session")
    if session:
        _private.add(wrapper)
    return wrapper


def _set_up_session(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Run the vendor's ``worker_session`` statements on a private connection just opened."""
    if connection not in _private:
        return
    statements = worker_session(connection.vendor)
    if statements:
        with connection.connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        if not connection.get_autocommit():
            # A session setting made in a transaction ends with it if that rolls back.
            connection.connection.commit()


@contextmanager
def atomic_on(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """A transaction on ``connection`` whether or not it is registered with Django.

    ``transaction.atomic`` takes an alias and so always means the shared
    connection; the private one is driven directly.
    """
    if connection is connections[connection.alias]:
        with transaction.atomic(using=connection.alias):
            yield
        return
    connection.set_autocommit(False)
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    else:
        connection.commit()
    finally:
        connection.set_autocommit(True)


# Where a statement can skip Django's cursor wrapper (see ``fetch_one``). MariaDB
# is left out: Django's wrapper there also turns some driver errors into
# IntegrityError.
_DRIVER_CURSOR_VENDORS = ("sqlite", "postgresql")


def fetch_one(connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]) -> Any:
    """Run ``sql`` (Django's ``%s`` placeholders) and return its first row.

    For the one statement that runs once per task from application code (the
    enqueue's INSERT), Django's cursor wrapper cost a third of the time
    outside the database: a wrapper object per cursor, the execute-wrapper
    chain, and on SQLite a regular expression over the SQL for every call.
    So the statement runs on the driver's own cursor, with the driver's
    placeholders, wrapped in Django's error translation, whenever nothing
    could notice the difference. Anything that hooks Django's cursors (an
    execute wrapper, query logging under DEBUG or ``force_debug_cursor``, a
    pending health check) gets Django's cursor as always, and so does a
    connection not open yet.
    """
    if (
        connection.vendor not in _DRIVER_CURSOR_VENDORS
        or connection.connection is None
        or connection.execute_wrappers
        or connection.queries_logged
        # Django checks a reused connection's health at its first cursor.
        or (
            getattr(connection, "health_check_enabled", True)
            and not getattr(connection, "health_check_done", False)
        )
    ):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(_driver_sql(connection.vendor, sql), params)
            return cursor.fetchone()
        finally:
            cursor.close()


@functools.lru_cache(maxsize=64)
def _driver_sql(vendor: str, sql: str) -> str:
    """``sql`` in the driver's placeholder style (built once per statement)."""
    if vendor == "sqlite":  # qmark style, as Django's SQLite cursor converts it
        return re.sub(r"(?<!%)%s", "?", sql).replace("%%", "%")
    return sql
