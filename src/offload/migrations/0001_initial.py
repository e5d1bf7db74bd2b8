"""offload's schema: the task table and its indexes, the workers, the leases,
the schedules and their fires, the queue switches, the admin's views of the
tasks, the queue depth samples, the concurrency and rate keys, and the
workflows' dependencies. Before the first release, the seventeen migrations
of the schema's development (0001 to 0018) were folded into this one, which
builds the very tables, constraints and indexes they built, with the same
names, on SQLite, PostgreSQL and MariaDB.

The task table's indexes are all built by one function, in one order (the
order SQLite's and MariaDB's planners consider them in when two cost the
same; the claim plans in bench/README.md were measured with it). Only the two
claim indexes of ``TaskRecord.Meta`` are in the model's state; the others are
written in SQL and stay out of it:

- the partial ones, because MariaDB has no partial indexes and a declared one
  makes Django warn (models.W037) on every management command of a MariaDB
  project about an index offload leaves out there on purpose. Each condition
  is written as the statements that use the index state it: SQLite uses a
  partial index only for a query whose terms imply its condition;
- the admin's, which serve operators only (no statement of the worker uses
  them), so the hot-path schema stays in one place.

Their names are part of the schema: code names some of them (``INDEXED BY
offload_task_async_claim_idx`` on SQLite, ``offload.store``).

Every index is built with a plain ``CREATE INDEX`` inside the migration's
transaction (where the engine has transactional DDL): the tables are new and
empty, so a build takes no time and blocks no one, and a failure leaves no
half-made schema behind. ``CONCURRENTLY`` would gain nothing on an empty
table, would wait for every older transaction of the database to end, and
cannot run in a transaction. A later migration that changes an index of a
live task table builds it online instead, with ``offload.online_indexes``.
"""

from typing import NamedTuple

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TASK_TABLE = "offload_task"


class SqlIndex(NamedTuple):
    """An index of the task table written in SQL, out of the model's state."""

    name: str
    columns: str
    # Makes the index partial where the engine has partial indexes
    # (PostgreSQL, SQLite); MariaDB builds it whole, or not at all if
    # partial_only.
    condition: str = ""
    unique: bool = False
    partial_only: bool = False


# The claim query exactly: equality on status and queue, then the claim order.
CLAIM_INDEX = models.Index(
    fields=["status", "queue_name", "-priority", "available_at", "id"],
    name="offload_task_claim_idx",
)
# The claim of a worker that takes every queue, or a list of them, in claim
# order without sorting the backlog.
CLAIM_ALL_INDEX = models.Index(
    fields=["status", "-priority", "available_at", "id"],
    name="offload_task_claim_all_idx",
)
# The claim of async tasks alone (a worker whose threads are full), which
# with a sync backlog would otherwise read every ready row and sort what
# matched. Django writes its SQL, whose condition the claim's terms match
# (store.claim, vendor.async_only); out of the model's state, and not built
# on MariaDB.
ASYNC_CLAIM_INDEX = models.Index(
    condition=models.Q(("is_async", True), ("status", "READY")),
    fields=["-priority", "available_at", "id"],
    name="offload_task_async_claim_idx",
)

TASK_INDEXES: list[models.Index | SqlIndex] = [
    CLAIM_INDEX,
    # The admin's filters and the dashboard's time windows.
    SqlIndex("offload_task_finished_idx", "finished_at"),
    SqlIndex("offload_task_enqueued_idx", "enqueued_at"),
    SqlIndex("offload_task_queue_idx", "queue_name, id"),
    SqlIndex("offload_task_path_idx", "task_path, id"),
    CLAIM_ALL_INDEX,
    ASYNC_CLAIM_INDEX,
    # The rescue's search for expired leases: running tasks only, so an
    # enqueue never writes to it. On MariaDB the rescue reads the running
    # tasks through the claim indexes, whose first column is the status.
    SqlIndex(
        "offload_task_running_lease_idx",
        "lease_expires_at",
        "status = 'RUNNING'",
        partial_only=True,
    ),
    # One holder per (backend, unique_key) (store.unique): a duplicate is
    # looked for among the tasks of one backend. A task without a key adds no
    # entry where the index is partial; MariaDB's holds every row and lets
    # NULLs repeat.
    SqlIndex(
        "offload_task_unique_key_uniq",
        "backend, unique_key",
        "unique_key IS NOT NULL",
        unique=True,
    ),
    # A concurrency key's oldest blocked tasks, for their promotion, and the
    # keys with blocked tasks, for the sweep (store.gate). On MariaDB it also
    # serves the count of a key's holders.
    SqlIndex(
        "offload_task_blocked_idx",
        "backend, concurrency_key, priority DESC, id",
        "status = 'BLOCKED'",
    ),
    # The count of a concurrency key's holders.
    SqlIndex(
        "offload_task_key_holders_idx",
        "backend, concurrency_key",
        "status IN ('READY', 'RUNNING') AND concurrency_key IS NOT NULL",
        partial_only=True,
    ),
    # A rate key's blocked tasks, for their promotion (store.rate_gate). On
    # MariaDB its (backend, rate_key) prefix also serves the count of a key's
    # window; none of its columns changes after a task's insert, so a task
    # without a rate key pays one entry at its insert and nothing after.
    SqlIndex(
        "offload_task_rate_blocked_idx",
        "backend, rate_key, priority DESC, id",
        "status = 'BLOCKED'",
    ),
    # The count of a rate key's window: its READY tasks and those claimed
    # within the period. Not on MariaDB, where its status and claimed_at
    # would change for every task.
    SqlIndex(
        "offload_task_rate_window_idx",
        "backend, rate_key, status, claimed_at",
        "rate_key IS NOT NULL",
        partial_only=True,
    ),
    # A workflow's tasks (store.dependencies).
    SqlIndex("offload_task_workflow_idx", "workflow_id, id", "workflow_id IS NOT NULL"),
    # The rescuer's walk of the WAITING tasks in id order: a worker's session
    # on PostgreSQL does not sort, and without it the walk read the table by
    # its primary key. It holds none but waiting tasks. MariaDB reads them
    # through the claim indexes, whose first column is the status, and sorts.
    SqlIndex("offload_task_waiting_idx", "id", "status = 'WAITING'", partial_only=True),
]

# Autovacuum settings of offload_task on PostgreSQL, for a queue's churn:
# every task is inserted, updated two or three times and finally deleted by
# the pruner, so the table collects dead rows much faster than the defaults
# assume (they wait until a fifth of the table is dead). These vacuum and
# analyze after about 1% of the table changed (and at least 1,000 rows).
# Other engines have no such settings. docs/operations.md explains each value.
AUTOVACUUM = {
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_vacuum_insert_threshold": "1000",
    "autovacuum_analyze_scale_factor": "0.01",
    "autovacuum_analyze_threshold": "1000",
    # The default 2 ms pause per cost limit is kept; a higher limit lets one
    # pass finish a busy table before the next batch of dead rows piles up.
    "autovacuum_vacuum_cost_limit": "1000",
}


def create_task_indexes(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    partial = schema_editor.connection.features.supports_partial_indexes
    for index in TASK_INDEXES:
        if isinstance(index, models.Index):
            # Django would build a conditional index whole where partial
            # indexes do not exist.
            if index.condition is None or partial:
                schema_editor.add_index(apps.get_model("offload", "TaskRecord"), index)
            continue
        if index.partial_only and not partial:
            continue
        where = f" WHERE {index.condition}" if index.condition and partial else ""
        create = "CREATE UNIQUE INDEX" if index.unique else "CREATE INDEX"
        schema_editor.execute(f"{create} {index.name} ON {TASK_TABLE} ({index.columns}){where}")


def tune_autovacuum(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    values = ", ".join(f"{name} = {value}" for name, value in AUTOVACUUM.items())
    schema_editor.execute(f"ALTER TABLE {TASK_TABLE} SET ({values})")


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        # Columns are in the order the migrations folded into this one added
        # them, not the model's order, so the tables are those they built.
        migrations.CreateModel(
            name="TaskRecord",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "task_path",
                    models.CharField(
                        help_text="Import path of the django.tasks Task.", max_length=255
                    ),
                ),
                (
                    "backend",
                    models.CharField(help_text="TASKS alias it was sent to.", max_length=100),
                ),
                ("queue_name", models.CharField(default="default", max_length=100)),
                ("priority", models.SmallIntegerField(default=0)),
                (
                    "status",
                    models.CharField(
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
                ("run_after", models.DateTimeField(blank=True, null=True)),
                ("available_at", models.DateTimeField()),
                ("enqueued_at", models.DateTimeField()),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("last_attempted_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("attempt", models.PositiveIntegerField(default=0)),
                ("lease_owner", models.CharField(blank=True, max_length=100, null=True)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("worker_ids", models.JSONField(blank=True, default=list)),
                ("args", models.JSONField(blank=True, default=list)),
                ("kwargs", models.JSONField(blank=True, default=dict)),
                ("return_value", models.JSONField(blank=True, null=True)),
                ("errors", models.JSONField(blank=True, default=list)),
                ("is_async", models.BooleanField(default=False)),
                ("cancel_requested_at", models.DateTimeField(blank=True, null=True)),
                ("max_attempts", models.PositiveIntegerField(default=1)),
                (
                    "timeout",
                    models.FloatField(blank=True, help_text="Seconds; None: no limit.", null=True),
                ),
                ("progress_at", models.DateTimeField(blank=True, null=True)),
                ("progress_current", models.FloatField(blank=True, null=True)),
                ("progress_message", models.CharField(blank=True, max_length=255, null=True)),
                ("progress_total", models.FloatField(blank=True, null=True)),
                ("claimed_at", models.DateTimeField(blank=True, null=True)),
                ("unique_key", models.CharField(blank=True, max_length=255, null=True)),
                ("unique_scope", models.CharField(blank=True, max_length=10, null=True)),
                ("unique_until", models.DateTimeField(blank=True, null=True)),
                ("trace_context", models.JSONField(blank=True, editable=False, null=True)),
                ("concurrency_key", models.CharField(blank=True, max_length=255, null=True)),
                ("concurrency_limit", models.PositiveIntegerField(blank=True, null=True)),
                ("rate_key", models.CharField(blank=True, max_length=255, null=True)),
                ("rate_count", models.PositiveIntegerField(blank=True, null=True)),
                ("rate_period", models.FloatField(blank=True, null=True)),
                ("workflow_id", models.BigIntegerField(blank=True, null=True)),
                ("waiting_on", models.IntegerField(blank=True, null=True)),
                ("has_dependents", models.BooleanField(blank=True, null=True)),
                ("upstream_results", models.CharField(blank=True, max_length=8, null=True)),
                ("on_upstream_failure", models.CharField(blank=True, max_length=8, null=True)),
            ],
            options={
                "verbose_name": "task",
                "verbose_name_plural": "tasks",
                "db_table": "offload_task",
            },
        ),
        migrations.CreateModel(
            name="WorkerRecord",
            fields=[
                ("id", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=100)),
                ("hostname", models.CharField(max_length=255)),
                ("pid", models.PositiveIntegerField()),
                ("supervisor_pid", models.PositiveIntegerField()),
                ("backend", models.CharField(max_length=100)),
                (
                    "queues",
                    models.CharField(help_text="The queues it claims from.", max_length=1000),
                ),
                ("threads", models.PositiveIntegerField()),
                ("started_at", models.DateTimeField()),
                ("heartbeat_at", models.DateTimeField(db_index=True)),
            ],
            options={
                "verbose_name": "worker",
                "verbose_name_plural": "workers",
                "db_table": "offload_worker",
            },
        ),
        migrations.CreateModel(
            name="Lease",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("owner", models.CharField(max_length=100)),
                ("expires_at", models.DateTimeField()),
            ],
            options={
                "db_table": "offload_lease",
            },
        ),
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("backend", models.CharField(default="default", max_length=100)),
                (
                    "task_path",
                    models.CharField(
                        blank=True, help_text="Import path of a Task.", max_length=255
                    ),
                ),
                (
                    "command",
                    models.CharField(
                        blank=True, help_text="A management command name.", max_length=100
                    ),
                ),
                (
                    "cron",
                    models.CharField(
                        blank=True, help_text="Five fields or @daily etc.", max_length=100
                    ),
                ),
                (
                    "interval",
                    models.PositiveIntegerField(blank=True, help_text="Seconds.", null=True),
                ),
                (
                    "timezone",
                    models.CharField(
                        blank=True,
                        help_text="IANA time zone of the cron expression.",
                        max_length=64,
                    ),
                ),
                ("args", models.JSONField(blank=True, default=list)),
                ("kwargs", models.JSONField(blank=True, default=dict)),
                ("queue_name", models.CharField(blank=True, max_length=100)),
                ("priority", models.SmallIntegerField(blank=True, null=True)),
                (
                    "catch_up",
                    models.CharField(
                        choices=[
                            ("skip", "Skip missed ticks"),
                            ("once", "Run once for all missed ticks"),
                            ("all", "Run every missed tick (capped)"),
                        ],
                        default="once",
                        max_length=10,
                    ),
                ),
                (
                    "skip_if_running",
                    models.BooleanField(
                        default=False,
                        help_text="Skip a tick while the previous run is READY or RUNNING.",
                    ),
                ),
                ("enabled", models.BooleanField(default=True, help_text="Untick to pause.")),
                ("from_code", models.BooleanField(default=False, editable=False)),
                ("next_fire_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("last_fired_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("last_error", models.TextField(blank=True, default="", editable=False)),
                ("last_error_at", models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                "verbose_name": "schedule",
                "verbose_name_plural": "schedules",
                "db_table": "offload_schedule",
                "ordering": ["backend", "name"],
                "indexes": [
                    models.Index(
                        fields=["backend", "enabled", "next_fire_at"], name="offload_sched_due_idx"
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("backend", "name"), name="offload_schedule_name_uniq"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ScheduleFire",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("fire_at", models.DateTimeField(help_text="The tick, in UTC.")),
                ("fired_at", models.DateTimeField(help_text="When a scheduler handled it.")),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("enqueued", "Enqueued"),
                            ("skipped", "Skipped: previous run still going"),
                            ("manual", "Run now (by hand)"),
                        ],
                        max_length=10,
                    ),
                ),
                (
                    "fired_by",
                    models.CharField(
                        blank=True, help_text="The worker whose scheduler fired it.", max_length=100
                    ),
                ),
                ("task_id", models.BigIntegerField(blank=True, null=True)),
                (
                    "schedule",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="fires",
                        to="offload.schedule",
                    ),
                ),
            ],
            options={
                "verbose_name": "schedule fire",
                "verbose_name_plural": "schedule fires",
                "db_table": "offload_schedule_fire",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("schedule", "fire_at"), name="offload_fire_once_uniq"
                    )
                ],
            },
        ),
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
        migrations.CreateModel(
            name="DepthSample",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("minute", models.DateTimeField(help_text="The minute sampled, in UTC.")),
                ("queue_name", models.CharField(max_length=100)),
                ("ready", models.PositiveIntegerField(help_text="READY tasks, due or scheduled.")),
                ("running", models.PositiveIntegerField()),
                (
                    "oldest_ready_seconds",
                    models.FloatField(
                        blank=True,
                        help_text="Age of the oldest due READY task; None: none due.",
                        null=True,
                    ),
                ),
            ],
            options={
                "verbose_name": "queue depth sample",
                "verbose_name_plural": "queue depth samples",
                "db_table": "offload_depth_sample",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("minute", "queue_name"), name="offload_depth_minute_uniq"
                    )
                ],
            },
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
        # The task table's indexes. Nothing to undo: unapplying the migration
        # drops the tables, and their indexes and settings with them.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                # In the migration's transaction on PostgreSQL and SQLite; in
                # none on MariaDB, which refuses DDL inside one.
                migrations.RunPython(create_task_indexes, migrations.RunPython.noop, atomic=False),
            ],
            state_operations=[
                migrations.AddIndex(model_name="taskrecord", index=CLAIM_INDEX),
                migrations.AddIndex(model_name="taskrecord", index=CLAIM_ALL_INDEX),
            ],
        ),
        migrations.RunPython(tune_autovacuum, migrations.RunPython.noop, elidable=False),
    ]
