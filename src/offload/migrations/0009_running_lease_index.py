"""The rescue's index of leases holds running tasks only, and the partial
indexes leave the model's state.

The index on ``(status, lease_expires_at)`` took a write at every enqueue and
every change of state; the rescue only ever looks for running tasks, so a
partial index of their leases serves it, and an enqueue never touches it.

Partial indexes are created here, in SQL, rather than declared on
``TaskRecord.Meta``: MariaDB has none, and a declared one makes Django warn
(models.W037) on every management command of a MariaDB project, about an index
offload leaves out there on purpose. The async claim index of 0008 stays in
the database and leaves the model's state the same way, except on MariaDB,
where Django had built it without its condition.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from offload.online_indexes import RemoveIndexOnline, create_index_sql, drop_index_sql

RUNNING_LEASE_INDEX = "offload_task_running_lease_idx"
ASYNC_CLAIM_INDEX = "offload_task_async_claim_idx"


def create_running_lease_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if not schema_editor.connection.features.supports_partial_indexes:
        return  # MariaDB: the rescue reads running tasks through the claim index's status
    # The condition is written as the rescue's query states it (SQLite matches
    # the terms of a partial index literally).
    create_index_sql(
        schema_editor, RUNNING_LEASE_INDEX, "offload_task", "lease_expires_at", "status = 'RUNNING'"
    )


def drop_running_lease_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.features.supports_partial_indexes:
        drop_index_sql(schema_editor, RUNNING_LEASE_INDEX, "offload_task")


def drop_ignored_async_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Django built 0008's index on MariaDB without its condition: a full index
    # no claim uses, which every enqueue paid for.
    if not schema_editor.connection.features.supports_partial_indexes:
        drop_index_sql(schema_editor, ASYNC_CLAIM_INDEX, "offload_task")


def restore_ignored_async_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if not schema_editor.connection.features.supports_partial_indexes:
        create_index_sql(
            schema_editor, ASYNC_CLAIM_INDEX, "offload_task", "priority DESC, available_at, id"
        )


class Migration(migrations.Migration):
    # Indexes are built and dropped CONCURRENTLY on PostgreSQL (offload.online_indexes).
    atomic = False

    dependencies = [
        ("offload", "0008_async_claim_index"),
    ]

    operations = [
        RemoveIndexOnline(
            model_name="taskrecord",
            name="offload_task_lease_idx",
        ),
        migrations.RunPython(create_running_lease_index, drop_running_lease_index),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(drop_ignored_async_index, restore_ignored_async_index),
            ],
            state_operations=[
                migrations.RemoveIndex(
                    model_name="taskrecord",
                    name="offload_task_async_claim_idx",
                ),
            ],
        ),
    ]
