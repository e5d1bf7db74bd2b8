"""An index in claim order across all queues, so a claim never sorts the backlog."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("offload", "0005_queues"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="taskrecord",
            index=models.Index(
                fields=["status", "-priority", "available_at", "id"],
                name="offload_task_claim_all_idx",
            ),
        ),
    ]
