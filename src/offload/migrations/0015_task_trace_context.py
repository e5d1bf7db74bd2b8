"""A task carries the trace context of its enqueue, for the worker's spans
(see ``offload.tracing``).

A nullable column with no default and no index: PostgreSQL, SQLite and
MariaDB (whose JSON is a LONGTEXT with a CHECK, added with ALGORITHM=INSTANT
too) add it by changing only the catalog, at once on any table size, so it
never holds up enqueues or claims."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0014_task_unique"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="trace_context",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
    ]
