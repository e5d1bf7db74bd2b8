"""A schedule keeps its last error: why the scheduler could not fire it (a
malformed row, a task that does not import, one that is not allowed), shown in
the admin and by ``offload schedules`` until it fires again."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0009_running_lease_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="schedule",
            name="last_error",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.AddField(
            model_name="schedule",
            name="last_error_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
