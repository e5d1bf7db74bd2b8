"""Whether offload's tables are there: the one message every command and the
admin give before ``migrate`` has run (or after an upgrade, before it runs again).

Called when something already went wrong (a ``DatabaseError``) or once at a
worker's start, never on a hot path: it loads the migration graph.
"""

from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor


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
