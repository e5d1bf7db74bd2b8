"""Rate limits: a task's rate key and rate, the table of per-key locks, and
the indexes of the rate gate (see offload.rates, store.rate_gate and
docs/coordination.md).

The columns are nullable with no default, so adding them rewrites nothing.
The indexes hold rate-keyed tasks only where the engine has partial indexes,
so a task enqueued without a rate key adds no entry to either:

- offload_task_rate_blocked_idx, (backend, rate_key, priority DESC, id) WHERE
  status = 'BLOCKED': a key's blocked tasks, for their promotion. On MariaDB
  (no partial indexes) it is plain, and its (backend, rate_key) prefix also
  serves the count of a key's window; none of its columns changes after a
  task's insert, so a task without a rate key pays one entry at its insert
  and nothing after.
- offload_task_rate_window_idx, (backend, rate_key, status, claimed_at) WHERE
  rate_key IS NOT NULL: the count of a key's window (its READY tasks and
  those claimed within the period). Not built on MariaDB, where its status
  and claimed_at would change for every task.

Like 0016's, they are created in SQL, online (``CONCURRENTLY`` on
PostgreSQL), and stay out of the model's state.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from offload.online_indexes import create_index_sql, drop_index_sql

BLOCKED_INDEX = "offload_task_rate_blocked_idx"
WINDOW_INDEX = "offload_task_rate_window_idx"


def create_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    create_index_sql(
        schema_editor,
        BLOCKED_INDEX,
        "offload_task",
        "backend, rate_key, priority DESC, id",
        "status = 'BLOCKED'",
    )
    if schema_editor.connection.vendor != "mysql":
        create_index_sql(
            schema_editor,
            WINDOW_INDEX,
            "offload_task",
            "backend, rate_key, status, claimed_at",
            "rate_key IS NOT NULL",
        )


def drop_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "mysql":
        drop_index_sql(schema_editor, WINDOW_INDEX, "offload_task")
    drop_index_sql(schema_editor, BLOCKED_INDEX, "offload_task")


class Migration(migrations.Migration):
    # The indexes are built CONCURRENTLY on PostgreSQL (offload.online_indexes).
    atomic = False

    dependencies = [
        ("offload", "0016_task_concurrency"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="rate_key",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="rate_count",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="rate_period",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="RateKey",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("backend", models.CharField(max_length=100)),
                ("name", models.CharField(max_length=255)),
                ("taken_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "rate key",
                "db_table": "offload_rate_key",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("backend", "name"), name="offload_rate_key_uniq"
                    )
                ],
            },
        ),
        migrations.RunPython(create_indexes, drop_indexes),
    ]
