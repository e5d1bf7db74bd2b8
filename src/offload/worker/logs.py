"""The worker's log output: text for people, JSON lines for log collectors.

Every line goes through the ``offload`` loggers. The worker adds a handler on
stderr in the chosen format unless the project's ``LOGGING`` already gives the
``offload`` logger handlers of its own; either way the level follows ``-v``.
Per-task lines carry their fields (task_id, task_path, queue, attempt,
duration, outcome, worker_id) as ``extra``, so the JSON format has them as keys.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else was passed as ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, message and the extras."""

    def __init__(self, process_label: str) -> None:
        super().__init__()
        self.process_label = process_label

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": self.process_label,
            "pid": record.process,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, process_label: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)-7s [{process_label}] %(message)s")


def configure(
    verbosity: int, log_format: str, process_label: str, stream: TextIO | None = None
) -> None:
    """Send offload's log lines to stderr (or ``stream``) at the level ``verbosity`` asks."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.offload_worker = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JSONFormatter(process_label) if log_format == "json" else TextFormatter(process_label)
    )
    level = _LEVELS.get(verbosity, logging.DEBUG)
    _attach(logging.getLogger("offload"), handler, level)
    _route_django_tasks(handler, verbosity)
    if verbosity >= 3:
        # Django's default LOGGING shows SQL only when DEBUG is on.
        _attach(logging.getLogger("django.db.backends"), handler, logging.DEBUG)


# The level of Django's own per-task lines in a worker, by verbosity. They say
# what the worker's own line per task says (started, succeeded, failed), so
# they are shown from -v 2; a failure, with its traceback (which the worker's
# line does not carry), from -v 1; none at -v 0, which shows the worker's own
# warnings only.
_DJANGO_TASKS_LEVELS = {0: logging.CRITICAL + 1, 1: logging.WARNING}


def _route_django_tasks(handler: logging.Handler, verbosity: int) -> None:
    """Send Django's ``django.tasks`` lines through the worker's handler, in its
    format, at the level ``verbosity`` asks, where the project left that logger
    alone.

    Otherwise Django's default ``LOGGING`` prints them (with ``DEBUG`` on) as
    plain text on its own console handler, beside the worker's lines and in
    any log format, and keeps them at INFO whatever ``-v`` says: each became a
    log record, with a walk of the stack, even when no handler printed it (a
    quarter of a no-op task's cost in a worker asked for warnings only). A
    project that set a level or handlers for ``django.tasks`` keeps them.
    """
    logger = logging.getLogger("django.tasks")
    routed = getattr(logger, "offload_routed", False)
    if not routed and (logger.level != logging.NOTSET or logger.handlers):
        return
    for old in [h for h in logger.handlers if getattr(h, "offload_worker", False)]:
        logger.removeHandler(old)
    logger.setLevel(_DJANGO_TASKS_LEVELS.get(verbosity, logging.DEBUG))
    logger.addHandler(handler)
    logger.propagate = False
    logger.offload_routed = True  # type: ignore[attr-defined]


def writes_json() -> bool:
    """Whether the worker's own handler writes offload's lines as JSON (not when
    the project's ``LOGGING`` routes them, in its own format)."""
    return any(
        getattr(h, "offload_worker", False) and isinstance(h.formatter, JSONFormatter)
        for h in logging.getLogger("offload").handlers
    )


def banner_fields(banner: str) -> tuple[str, dict[str, str]]:
    """The worker's banner as a message (its first line) and its fields, for the
    JSON format: ``"  queues    all"`` is ``{"queues": "all"}``."""
    first, *rest = banner.strip().splitlines() or [""]
    fields: dict[str, str] = {}
    for line in rest:
        key, _, value = line.strip().partition(" ")
        fields[key] = value.strip()
    return first, fields


def _attach(logger: logging.Logger, handler: logging.Handler, level: int) -> None:
    logger.setLevel(level)
    for old in [h for h in logger.handlers if getattr(h, "offload_worker", False)]:
        logger.removeHandler(old)
    if logger.handlers:
        return  # the project routes these logs itself
    logger.addHandler(handler)
    # The handler is ours; a project handler higher up must not print every
    # line a second time.
    logger.propagate = False
