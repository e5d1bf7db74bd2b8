"""Unique tasks: the key a task holds, its scope, and the index that allows
one holder per key (see offload.uniqueness and docs/coordination.md).

The columns are nullable with no default, so adding them rewrites nothing
(PostgreSQL and MariaDB add such a column to the catalogue only). The index is
unique on (backend, unique_key): a duplicate is looked for among the tasks of
one backend, as every result is read through its backend. It is partial
(``WHERE unique_key IS NOT NULL``) where the engine has partial indexes, so a
task enqueued without a key adds no entry to it; MariaDB's unique index holds
every row and lets NULLs repeat. Like 0009's, it is created in SQL, online
(``CONCURRENTLY`` on PostgreSQL), and stays out of the model's state.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from offload.online_indexes import create_index_sql, drop_index_sql

UNIQUE_KEY_INDEX = "offload_task_unique_key_uniq"


def create_unique_key_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # The condition is written as the holder's lookup implies it: SQLite uses
    # a partial index for "unique_key = %s", which implies IS NOT NULL.
    create_index_sql(
        schema_editor,
        UNIQUE_KEY_INDEX,
        "offload_task",
        "backend, unique_key",
        "unique_key IS NOT NULL",
        unique=True,
    )


def drop_unique_key_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    drop_index_sql(schema_editor, UNIQUE_KEY_INDEX, "offload_task")


class Migration(migrations.Migration):
    # The index is built CONCURRENTLY on PostgreSQL (offload.online_indexes).
    atomic = False

    dependencies = [
        ("offload", "0013_task_autovacuum"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="unique_key",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="unique_scope",
            field=models.CharField(blank=True, max_length=10, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="unique_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(create_unique_key_index, drop_unique_key_index),
    ]
