"""An index in claim order across all queues, so a claim never sorts the backlog."""

from django.db import migrations, models

from offload.online_indexes import AddIndexOnline


class Migration(migrations.Migration):
    # The index is built CONCURRENTLY on PostgreSQL (offload.online_indexes).
    atomic = False

    dependencies = [
        ("offload", "0005_queues"),
    ]

    operations = [
        AddIndexOnline(
            model_name="taskrecord",
            index=models.Index(
                fields=["status", "-priority", "available_at", "id"],
                name="offload_task_claim_all_idx",
            ),
        ),
    ]
