"""Whether offload's tables are there: the one message every command and the
admin give before ``migrate`` has run (or after an upgrade, before it runs again).

:func:`tables_problem` is called when something already went wrong (a
``DatabaseError``) or once at a worker's start, never on a hot path: it loads
the migration graph. :func:`unapplied` is the probe's cheaper question (``offload
health``), asked of ``django_migrations`` and the migration files alone.
"""

import importlib
import pkgutil

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder


def tables_message(database: str) -> str:
    """What to do when offload's tables on ``database`` are missing or behind."""
    flag = "" if database == "default" else f" --database {database}"
    return (
        f"offload's tables on database {database!r} are missing or not up to date: "
        f"run 'manage.py migrate{flag}'."
    )


def tables_problem(database: str) -> str | None:
    """:func:`tables_message` if an offload migration is not applied on
    ``database``; None if they all are, or if the database cannot be asked
    (then the error at hand says more than this could)."""
    try:
        executor = MigrationExecutor(connections[database])
        leaves = [node for node in executor.loader.graph.leaf_nodes() if node[0] == "offload"]
        behind = bool(executor.migration_plan(leaves))
    except DatabaseError:
        return None
    return tables_message(database) if behind else None


def unapplied(database: str) -> list[str]:
    """offload's migrations not applied on ``database``, by name, in two small
    reads (the recorder's table, then its offload rows) rather than the whole
    migration graph: for a health probe that runs every few seconds.

    Raises ``DatabaseError`` when the database cannot be asked.
    """
    connection = connections[database]
    recorder = MigrationRecorder(connection)
    module_name, _ = MigrationLoader.migrations_module("offload")
    if module_name is None:
        return []
    module = importlib.import_module(module_name)
    on_disk = {
        name
        for _, name, is_package in pkgutil.iter_modules(module.__path__)
        if not is_package and name[0] not in "_~"
    }
    if not recorder.has_table():
        return sorted(on_disk)
    applied = set(recorder.migration_qs.filter(app="offload").values_list("name", flat=True))
    return sorted(on_disk - applied)
