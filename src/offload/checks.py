"""System checks that need the database (run by ``check --database`` and ``migrate``).

Settings problems are reported by ``DatabaseBackend.check()``, which Django's
tasks framework calls for every backend.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db import DatabaseError, connections

from offload.store.vendor import server_problem


def _offload_databases(requested: Iterable[str] | None) -> dict[str, list[str]]:
    """Database alias -> the TASKS aliases that store tasks there, for the
    databases this check run may query (none unless asked: Django's rule)."""
    from django.tasks import task_backends

    from offload.backend import DatabaseBackend

    allowed = set(requested or ())
    found: dict[str, list[str]] = {}
    for backend in task_backends.all():
        if not isinstance(backend, DatabaseBackend) or backend.config.problems:
            continue
        if backend.config.database in allowed:
            found.setdefault(backend.config.database, []).append(backend.alias)
    return found


@checks.register(checks.Tags.database)
def check_database_engine(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Iterable[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """Refuse MySQL behind Django's mysql engine (telling it from MariaDB takes a query).

    Other unsupported engines are known without a query and reported by
    ``DatabaseBackend.check()``.
    """
    messages: list[checks.CheckMessage] = []
    for alias, backends in _offload_databases(databases).items():
        try:
            problem = server_problem(connections[alias])
        except DatabaseError:
            continue  # an unreachable server is reported by Django itself
        if problem:
            messages.append(
                checks.Error(
                    f"{problem} (used by TASKS {', '.join(backends)})",
                    obj=f"DATABASES[{alias!r}]",
                    id="offload.E003",
                )
            )
    return messages


@checks.register(checks.Tags.database)
def check_sqlite_journal_mode(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Iterable[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """Warn when tasks live in an SQLite file that is not in WAL mode.

    Without WAL, a worker's writes block every reader of the file (including the
    web requests that enqueue), and readers block the worker.
    """
    messages: list[checks.CheckMessage] = []
    for alias, backends in _offload_databases(databases).items():
        connection = connections[alias]
        if connection.vendor != "sqlite" or connection.is_in_memory_db():  # type: ignore[attr-defined]
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode")
                mode = str(cursor.fetchone()[0]).lower()
        except DatabaseError:
            continue
        if mode != "wal":
            messages.append(
                checks.Warning(
                    f"SQLite database {alias!r} (used by TASKS {', '.join(backends)}) is in "
                    f"{mode!r} journal mode; workers and web requests will block each other.",
                    hint='Add "init_command": "PRAGMA journal_mode=WAL;" to its OPTIONS.',
                    obj=f"DATABASES[{alias!r}]",
                    id="offload.W001",
                )
            )
    return messages
