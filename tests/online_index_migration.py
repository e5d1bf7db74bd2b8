"""A migration of the task table made of ``offload.online_indexes``' operations,
for the tests of that module (offload's own schema is one initial migration,
which builds its indexes on new, empty tables).

It is in no migration graph: the tests apply and unapply it with Django's
executor on top of offload's migrations. Forwards it builds a full index,
builds a partial one in SQL and drops the full one (as a migration that
replaces an index does); backwards it builds the full one again, drops the
partial one and drops the full one: every operation of the module, each way.
"""

from django.db import connection, migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState, StateApps

from offload.online_indexes import (
    AddIndexOnline,
    RemoveIndexOnline,
    create_index_sql,
    drop_index_sql,
)

NAME = "9999_online_index_test"
TABLE = "offload_task"
FULL_INDEX = models.Index(fields=["status", "lease_expires_at"], name="offload_test_lease_idx")
PARTIAL_INDEX = "offload_test_running_lease_idx"


def create_partial(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    create_index_sql(schema_editor, PARTIAL_INDEX, TABLE, "lease_expires_at", "status = 'RUNNING'")


def drop_partial(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    drop_index_sql(schema_editor, PARTIAL_INDEX, TABLE)


class Migration(migrations.Migration):
    # The indexes are built and dropped CONCURRENTLY on PostgreSQL.
    atomic = False

    operations = [
        AddIndexOnline(model_name="taskrecord", index=FULL_INDEX),
        migrations.RunPython(create_partial, drop_partial),
        RemoveIndexOnline(model_name="taskrecord", name=FULL_INDEX.name),
    ]


def run(*, backwards: bool) -> None:
    """Apply the migration, or unapply it, on the default database, from the
    state of offload's newest migration."""
    executor = MigrationExecutor(connection)
    leaf = next(node for node in executor.loader.graph.leaf_nodes() if node[0] == "offload")
    before: ProjectState = executor.loader.project_state(leaf, at_end=True)
    migration = Migration(NAME, "offload")
    if backwards:
        executor.unapply_migration(before, migration)
    else:
        executor.apply_migration(before, migration)
