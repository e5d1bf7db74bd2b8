"""A schedule's last error, kept on its row for the admin and ``offload schedules``.

A scheduler passes every second or so, and a broken schedule is found broken on
each pass: the row is written (and the error logged) when the error changes or
once every ``REPEAT_SECONDS`` while it lasts, not on every pass.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from offload.models import Schedule

logger = logging.getLogger("offload.scheduler")

REPEAT_SECONDS = 60
MAX_ERROR_CHARS = 2000  # an error message, not a traceback: those go to the log


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_CHARS]


def note_error(row: Schedule, database: str, now: datetime, exc: BaseException) -> None:
    """Record ``exc`` as the row's last error (and log it), at most once a minute."""
    from offload.models import Schedule

    message = describe_error(exc)
    recent = row.last_error_at is not None and now - row.last_error_at < timedelta(
        seconds=REPEAT_SECONDS
    )
    if message == row.last_error and recent:
        return
    logger.error("Schedule %r cannot fire: %s", row.name, message, exc_info=exc)
    Schedule.objects.using(database).filter(pk=row.pk).update(last_error=message, last_error_at=now)


def clear_error(row: Schedule, database: str) -> None:
    """The row fires again: forget its last error."""
    from offload.models import Schedule

    Schedule.objects.using(database).filter(pk=row.pk).exclude(last_error="").update(
        last_error="", last_error_at=None
    )
