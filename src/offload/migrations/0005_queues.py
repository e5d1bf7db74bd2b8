"""Queue pause switches, the admin's per-status views of the tasks, and the indexes behind the admin's filters.

The indexes are created here rather than declared on ``TaskRecord.Meta``: they
serve operators only (no statement of the worker uses them), and keeping them
out of the model's state keeps the hot-path schema in one place.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from offload.online_indexes import create_index_sql, drop_index_sql

# name -> columns; every filter and the dashboard's time windows use one.
ADMIN_INDEXES = {
    "offload_task_finished_idx": "finished_at",
    "offload_task_enqueued_idx": "enqueued_at",
    "offload_task_queue_idx": "queue_name, id",
    "offload_task_path_idx": "task_path, id",
}


def create_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    for name, columns in ADMIN_INDEXES.items():
        create_index_sql(schema_editor, name, "offload_task", columns)


def drop_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    for name in ADMIN_INDEXES:
        drop_index_sql(schema_editor, name, "offload_task")


class Migration(migrations.Migration):
    # The indexes are built CONCURRENTLY on PostgreSQL (offload.online_indexes).
    atomic = False

    dependencies = [
        ("offload", "0004_schedules"),
    ]

    operations = [
        migrations.CreateModel(
            name="Queue",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("paused_at", models.DateTimeField(blank=True, null=True)),
                ("paused_by", models.CharField(blank=True, default="", max_length=150)),
            ],
            options={
                "verbose_name": "queue",
                "verbose_name_plural": "queues",
                "db_table": "offload_queue",
            },
        ),
        migrations.CreateModel(
            name="ReadyTask",
            fields=[],
            options={
                "verbose_name": "ready task",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("offload.taskrecord",),
        ),
        migrations.CreateModel(
            name="ScheduledTask",
            fields=[],
            options={
                "verbose_name": "scheduled task",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("offload.taskrecord",),
        ),
        migrations.CreateModel(
            name="RunningTask",
            fields=[],
            options={
                "verbose_name": "running task",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("offload.taskrecord",),
        ),
        migrations.CreateModel(
            name="FailedTask",
            fields=[],
            options={
                "verbose_name": "failed task",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("offload.taskrecord",),
        ),
        migrations.CreateModel(
            name="SuccessfulTask",
            fields=[],
            options={
                "verbose_name": "successful task",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("offload.taskrecord",),
        ),
        migrations.CreateModel(
            name="Dashboard",
            fields=[],
            options={
                "verbose_name": "dashboard",
                "verbose_name_plural": "dashboard",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("offload.taskrecord",),
        ),
        migrations.RunPython(create_indexes, drop_indexes, atomic=False, elidable=False),
    ]
