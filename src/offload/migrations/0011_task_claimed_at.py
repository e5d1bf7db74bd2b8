"""A task keeps when it was claimed apart from when its code began
(``started_at``, ``last_attempted_at``, now written by the worker).

A nullable column with no default and no index: PostgreSQL, MariaDB and SQLite
add it by changing only the catalog, at once on any table size, so it never
holds up enqueues or claims."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0010_schedule_last_error"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskrecord",
            name="claimed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
