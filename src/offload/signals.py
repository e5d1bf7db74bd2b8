"""Sending Django's task signals, without paying for a send that nothing hears.

Django connects one receiver of its own to each task signal: a line on the
``django.tasks`` logger (DEBUG when a task is enqueued, INFO when it starts
or succeeds, ERROR when it fails). Django's dispatcher spends about 10 µs on
a send even when the logger then drops that line, and a no-op task sends two:
yappi put them at a tenth of a worker's CPU per task.

So a send whose receivers are all Django's own log line, at a level the
logger drops, is skipped: nothing could tell it was not sent. A send with any
other receiver (the project's, a library's, a test's) goes through Django's
dispatcher as before, and so does every send if Django ever keeps its
receivers in a shape this module does not recognise.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from django.dispatch import Signal
from django.tasks import TaskResult, TaskResultStatus
from django.tasks import signals as django_signals

_logger = logging.getLogger("django.tasks")


def _own_receiver(name: str) -> object:
    # A stand-in that matches no receiver if Django renames its log receivers.
    return getattr(django_signals, name, object())


# Each task signal, the receiver Django connects to it, and the level it logs at.
_LOG_LINES: dict[int, tuple[object, int | None]] = {
    id(django_signals.task_enqueued): (_own_receiver("log_task_enqueued"), logging.DEBUG),
    id(django_signals.task_started): (_own_receiver("log_task_started"), logging.INFO),
    # INFO for a success, ERROR for a failure: the level is read off the result.
    id(django_signals.task_finished): (_own_receiver("log_task_finished"), None),
}


def send_task_signal(signal: Signal, sender: type, task_result: TaskResult[..., Any]) -> None:
    """``signal.send(sender, task_result=task_result)``, unless no one would hear it."""
    if heard(signal, failed=task_result.status == TaskResultStatus.FAILED):
        signal.send(sender, task_result=task_result)


def heard(signal: Signal, *, failed: bool = False) -> bool:
    """Whether a send of task signal ``signal`` (about a ``failed`` task, for
    ``task_finished``) would reach anything: a receiver other than Django's
    log line, or that line at a level the logger keeps.

    A caller that must build the TaskResult to send asks this first.
    """
    log_line, level = _LOG_LINES.get(id(signal), (None, None))
    if log_line is None:
        return True
    try:
        for entry in signal.receivers:
            receiver = entry[1]
            if isinstance(receiver, weakref.ReferenceType):
                receiver = receiver()
            if receiver is not log_line:
                return True
    except (TypeError, IndexError):
        return True
    if level is None:
        level = logging.ERROR if failed else logging.INFO
    return _logger.isEnabledFor(level)
