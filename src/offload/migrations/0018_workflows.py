"""Workflows: the WAITING state, a task's place in a workflow, and the table
of its dependencies (see offload.workflows and store.dependencies).

The task's new columns are nullable with no default, so adding them rewrites
nothing, and a task enqueued outside a workflow leaves them NULL. The index
of a workflow's tasks holds workflow tasks only where the engine has partial
indexes; like 0014's, it is created in SQL, online (``CONCURRENTLY`` on
PostgreSQL), and stays out of the model's state. So is the rescuer's walk of
the WAITING tasks in id order, offload_task_waiting_idx, (id) WHERE status =
'WAITING' (it holds none but waiting tasks, so no other task adds an entry):
a worker's session on PostgreSQL does not sort, and without it the walk read
the table by its primary key. MariaDB, which has no partial indexes, reads
the waiting tasks through the claim indexes, whose first column is the
status, and sorts them.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from offload.online_indexes import create_index_sql, drop_index_sql

WORKFLOW_INDEX = "offload_task_workflow_idx"
WAITING_INDEX = "offload_task_waiting_idx"


def create_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    create_index_sql(
        schema_editor, WORKFLOW_INDEX, "offload_task", "workflow_id, id", "workflow_id IS NOT NULL"
    )
    if schema_editor.connection.vendor != "mysql":
        create_index_sql(schema_editor, WAITING_INDEX, "offload_task", "id", "status = 'WAITING'")


def drop_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "mysql":
        drop_index_sql(schema_editor, WAITING_INDEX, "offload_task")
    drop_index_sql(schema_editor, WORKFLOW_INDEX, "offload_task")


class Migration(migrations.Migration):
    # The index is built CONCURRENTLY on PostgreSQL (offload.online_indexes).
    atomic = False

    dependencies = [
        ("offload", "0017_task_rate"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="workflow_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="waiting_on",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="has_dependents",
            field=models.BooleanField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="upstream_results",
            field=models.CharField(blank=True, max_length=8, null=True),
        ),
        migrations.AddField(
            model_name="taskrecord",
            name="on_upstream_failure",
            field=models.CharField(blank=True, max_length=8, null=True),
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
                    ("WAITING", "Waiting"),
                ],
                default="READY",
                max_length=10,
            ),
        ),
        migrations.CreateModel(
            name="TaskDependency",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("task_id", models.BigIntegerField()),
                ("upstream_id", models.BigIntegerField()),
                ("position", models.PositiveIntegerField()),
            ],
            options={
                "verbose_name": "task dependency",
                "verbose_name_plural": "task dependencies",
                "db_table": "offload_task_dependency",
                "indexes": [models.Index(fields=["upstream_id"], name="offload_dep_upstream_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("task_id", "upstream_id"), name="offload_dependency_uniq"
                    )
                ],
            },
        ),
        migrations.RunPython(create_indexes, drop_indexes),
    ]
