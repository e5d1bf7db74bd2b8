"""Concurrency limits: a task's concurrency key and limit, the BLOCKED state,
the table of per-key locks, and the indexes of the gate (see
offload.concurrency, store.gate and docs/coordination.md).

The columns are nullable with no default, so adding them rewrites nothing.
The indexes hold keyed tasks only where the engine has partial indexes, so a
task enqueued without a key adds no entry to either:

- offload_task_blocked_idx, (backend, concurrency_key, priority DESC, id) WHERE
  status = 'BLOCKED': a key's oldest blocked tasks, for their promotion, and
  the keys with blocked tasks, for the sweep. On MariaDB (no partial
  indexes) it is plain and also serves the count of a key's holders.
- offload_task_key_holders_idx, (backend, concurrency_key) WHERE status IN
  ('READY', 'RUNNING') AND concurrency_key IS NOT NULL: the count of a key's
  holders. Not built on MariaDB.

Like 0014's, they are created in SQL, online (``CONCURRENTLY`` on
PostgreSQL), and stay out of the model's state.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from offload.online_indexes import create_index_sql, drop_index_sql

BLOCKED_INDEX = "offload_task_blocked_idx"
HOLDERS_INDEX = "offload_task_key_holders_idx"


def create_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # The conditions are written as the gate's statements state them (the
    # status as a constant): SQLite uses a partial index only for a query
    # whose terms imply its condition.
    create_index_sql(
        schema_editor,
        BLOCKED_INDEX,
        "offload_task",
        "backend, concurrency_key, priority DESC, id",
        "status = 'BLOCKED'",
    )
    if schema_editor.connection.vendor != "mysql":
        create_index_sql(
            schema_editor,
            HOLDERS_INDEX,
            "offload_task",
            "backend, concurrency_key",
            "status IN ('READY', 'RUNNING') AND concurrency_key IS NOT NULL",
        )


def drop_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "mysql":
        drop_index_sql(schema_editor, HOLDERS_INDEX, "offload_task")
    drop_index_sql(schema_editor, BLOCKED_INDEX, "offload_task")


class Migration(migrations.Migration):
    # The indexes are built CONCURRENTLY on PostgreSQL (offload.online_indexes).
    atomic = False

    dependencies = [
        ("offload", "0015_task_trace_context"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="concurrency_key",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="concurrency_limit",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="taskrecord",
            name="status",
            field=models.CharField(
                choices=[
                    ("READY", "Ready"),
                    ("RUNNING", "Running"),
                    ("SUCCESSFUL", "Successful"),
                    ("FAILED", "Failed"),
                    ("CANCELLED", "Cancelled"),
                    ("BLOCKED", "Blocked"),
                ],
                default="READY",
                max_length=10,
            ),
        ),
        migrations.CreateModel(
            name="ConcurrencyKey",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("backend", models.CharField(max_length=100)),
                ("name", models.CharField(max_length=255)),
                ("taken_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "concurrency key",
                "db_table": "offload_concurrency_key",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("backend", "name"), name="offload_concurrency_key_uniq"
                    )
                ],
            },
        ),
        migrations.RunPython(create_indexes, drop_indexes),
    ]
