"""The worker's own database connection.

Task code gets Django's usual connection hygiene (``close_old_connections``
around each task, as around each request), which with the default
``CONN_MAX_AGE = 0`` means a new connection per task. The worker's own traffic
(claim, complete) must not pay that: it uses a private connection, opened from
the same settings but kept open, and checked for health before each use.

A private connection also means a task that leaves its connection in a broken
transaction cannot break the worker's next claim.
"""

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend


def open_private(alias: str) -> BaseDatabaseWrapper:
    """A connection to ``alias`` that Django's request hygiene does not close.

    An in-memory SQLite database exists only inside its one connection, so there
    the shared connection is returned instead.
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
    wrapper: BaseDatabaseWrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(
        settings_dict, alias
    )
    return wrapper


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
