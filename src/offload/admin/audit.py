"""The admin's record of who did what: one ``LogEntry`` per row an operation
changed, written in bulk, so each task's and queue's history page shows it."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.http import HttpRequest

__all__ = ["ADDITION", "CHANGE", "DELETION", "log_rows"]

# LogEntry.object_repr's width.
MAX_REPR = 200
BATCH_SIZE = 500


def log_rows(
    request: HttpRequest,
    model: type[Model],
    rows: Iterable[tuple[object, str]],
    flag: int,
    message: str | Mapping[Any, str],
) -> int:
    """Log ``(pk, label)`` rows of ``model`` as done by the request's user; return how many.

    ``message`` is the change message of every row, or one per pk.
    """
    content_type = ContentType.objects.get_for_model(model)
    entries = [
        LogEntry(
            user_id=int(request.user.pk or 0),
            content_type=content_type,
            object_id=str(pk),
            object_repr=label[:MAX_REPR],
            action_flag=flag,
            change_message=message if isinstance(message, str) else message[pk],
        )
        for pk, label in rows
    ]
    LogEntry.objects.bulk_create(entries, batch_size=BATCH_SIZE)
    return len(entries)
