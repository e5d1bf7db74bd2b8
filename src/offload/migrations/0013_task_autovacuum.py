"""Autovacuum settings for offload_task on PostgreSQL, chosen for a queue's churn.

Every task is inserted, updated two or three times (claim, outcome, progress)
and finally deleted by the pruner, so the table collects dead rows much faster
than the default thresholds assume: by default autovacuum waits until a fifth
of the table is dead, which for a table of a million rows is 200,000 dead rows
that every claim's index scan steps over. These settings vacuum and analyze
after about 1% of the table changed (and at least 1,000 rows), so dead rows
are reclaimed while they are few and the planner's statistics follow the
backlog. ``ALTER TABLE ... SET (...)`` takes a SHARE UPDATE EXCLUSIVE lock,
which enqueues, claims and deletes do not wait for. Other engines have no such
settings (InnoDB's purge and SQLite's free pages need none); this migration
does nothing there. docs/operations.md explains each value.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

SETTINGS = {
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


def set_storage(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    values = ", ".join(f"{name} = {value}" for name, value in SETTINGS.items())
    schema_editor.execute(f"ALTER TABLE offload_task SET ({values})")


def reset_storage(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE offload_task RESET ({', '.join(SETTINGS)})")


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0010_schedule_last_error"),
    ]

    operations = [
        migrations.RunPython(set_storage, reset_storage, elidable=False),
    ]
