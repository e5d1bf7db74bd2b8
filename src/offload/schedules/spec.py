"""What a schedule says, and when it fires.

A schedule fires on a cron expression (five fields, or an alias such as
``@daily``) in its own time zone, or every ``interval`` seconds. Fire times are
a pure function of the schedule, never of when a scheduler happened to look:
that is what lets any number of schedulers agree on each tick and record it
under a unique key.

Daylight saving time follows Debian cron, through ``cronsim``: a fixed-time
schedule whose local time is skipped (spring forward) fires once, at the first
minute after the jump; one whose local time happens twice (fall back) fires
once, at the first occurrence. Schedules with ``*`` in the minute or hour field
simply follow UTC instants. Interval schedules ignore time zones: they fire at
the multiples of their interval since the Unix epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY

from offload.limits import MAX_NAME_LENGTH

# The task that runs a schedule's command: any command for schedules from code,
# only the allowed ones for schedules made in the admin.
COMMAND_TASK_PATH = "offload.command_tasks.run_command"
ALLOWED_COMMAND_TASK_PATH = "offload.command_tasks.run_allowed_command"

# cronsim reads five or six fields; the usual aliases are spelled out here.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

CATCH_UP_POLICIES = ("skip", "once", "all")
DEFAULT_CATCH_UP = "once"

_KEYS = {
    "task": "import path of a django.tasks Task",
    "command": "name of a management command",
    "cron": "cron expression: five fields or an alias such as @daily",
    "interval": "seconds between runs",
    "args": "list of positional arguments",
    "kwargs": "dict of keyword arguments (options, for a command)",
    "queue": "queue name (default: the task's own)",
    "priority": "task priority (default: the task's own)",
    "timezone": "IANA time zone of the cron expression (default: TIME_ZONE)",
    "catch_up": "after downtime: skip, once or all",
    "skip_if_running": "skip a tick while the previous run is READY or RUNNING",
}


class InvalidSchedule(ValueError):
    """A schedule's definition is malformed; the message says what and where."""


def normalize_cron(expression: str) -> str:
    """The five-field form of ``expression``; raise ``InvalidSchedule`` if it is not valid."""
    text = " ".join(str(expression).split())
    text = ALIASES.get(text.lower(), text)
    if len(text.split()) != 5:
        known = ", ".join(ALIASES)
        raise InvalidSchedule(
            f"cron {expression!r} must have five fields (minute hour day month weekday) "
            f"or be one of {known}"
        )
    try:
        fires = CronSim(text, datetime.now(UTC))
    except CronSimError as exc:
        raise InvalidSchedule(f"cron {expression!r} is not valid: {exc}") from None
    if next(fires, None) is None:
        raise InvalidSchedule(f"cron {expression!r} {NEVER_FIRES}")
    return text


# cronsim gives up after 50 years without a match.
NEVER_FIRES = "never fires (no fire time in the next 50 years)"


def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"timezone {name!r} is not a known IANA time zone") from None


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: a cron expression in a time zone, or a fixed interval."""

    cron: str | None = None
    interval: int | None = None
    timezone: str = "UTC"

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``moment``, in UTC, earliest first."""
        if self.interval:
            step = self.interval
            seconds = int(moment.timestamp() // step) * step + step
            while True:
                yield datetime.fromtimestamp(seconds, UTC)
                seconds += step
        else:
            assert self.cron is not None
            for fire in CronSim(self.cron, moment.astimezone(load_zone(self.timezone))):
                yield fire.astimezone(UTC)

    def until(self, moment: datetime) -> Iterator[datetime]:
        """Fire times at or before ``moment``, in UTC, latest first."""
        if self.interval:
            step = self.interval
            seconds = int(moment.timestamp() // step) * step
            while True:
                yield datetime.fromtimestamp(seconds, UTC)
                seconds -= step
        else:
            assert self.cron is not None
            # Reverse iteration starts strictly before its start, unless the start
            # has microseconds; one microsecond later makes it inclusive.
            start = (moment + timedelta(microseconds=1)).astimezone(load_zone(self.timezone))
            for fire in CronSim(self.cron, start, reverse=True):
                yield fire.astimezone(UTC)

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time after ``moment``; ``InvalidSchedule`` if there is none."""
        found = next(self.after(moment), None)
        if found is None:
            raise InvalidSchedule(f"cron {self.cron!r} {NEVER_FIRES}")
        return found

    def upcoming(self, moment: datetime, count: int) -> list[datetime]:
        """Up to ``count`` fire times after ``moment`` (fewer if it stops firing)."""
        fires = self.after(moment)
        return [fire for _, fire in zip(range(count), fires, strict=False)]

    def describe(self) -> str:
        if self.interval:
            return f"every {self.interval}s"
        return f"{self.cron} ({self.timezone})"


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule as written in code or settings, validated."""

    name: str
    timing: Timing
    task_path: str = ""
    command: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue_name: str = ""  # "": the task's own
    priority: int | None = None  # None: the task's own
    catch_up: str = DEFAULT_CATCH_UP
    skip_if_running: bool = False


def parse_timing(cron: object, interval: object, timezone: object, default_timezone: str) -> Timing:
    """Build a :class:`Timing` from raw values; raise ``InvalidSchedule``."""
    if (cron is None) == (interval is None):
        raise InvalidSchedule("needs exactly one of 'cron' and 'interval'")
    zone = default_timezone if timezone in (None, "") else timezone
    if not isinstance(zone, str):
        raise InvalidSchedule(f"timezone must be a string, got {type(zone).__name__}")
    load_zone(zone)
    if cron is not None:
        if not isinstance(cron, str):
            raise InvalidSchedule(f"cron must be a string, got {type(cron).__name__}")
        return Timing(cron=normalize_cron(cron), timezone=zone)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise InvalidSchedule(
            f"interval must be a whole number of seconds, 1 or more, got {interval!r}"
        )
    return Timing(interval=interval, timezone=zone)


def parse_spec(name: object, raw: object, default_timezone: str) -> ScheduleSpec:
    """Validate one entry of ``OPTIONS["SCHEDULES"]``; raise ``InvalidSchedule``."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
        raise InvalidSchedule(
            f"schedule name {name!r} must be a non-empty string of at most "
            f"{MAX_NAME_LENGTH} characters"
        )
    if not isinstance(raw, Mapping):
        raise InvalidSchedule(f"must be a dict, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_KEYS), key=str)
    if unknown:
        raise InvalidSchedule(
            f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(_KEYS)}"
        )
    task, command = raw.get("task"), raw.get("command")
    if (task is None) == (command is None):
        raise InvalidSchedule("needs exactly one of 'task' and 'command'")
    for key, value in (("task", task), ("command", command)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidSchedule(f"{key} must be a non-empty string, got {value!r}")
    if isinstance(task, str) and "." not in task:
        raise InvalidSchedule(f"task {task!r} must be an import path such as 'myapp.tasks.send'")
    timing = parse_timing(
        raw.get("cron"), raw.get("interval"), raw.get("timezone"), default_timezone
    )
    args = raw.get("args", [])
    if isinstance(args, tuple):
        args = list(args)
    if not isinstance(args, list):
        raise InvalidSchedule(f"args must be a list, got {type(args).__name__}")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidSchedule("kwargs must be a dict with string keys")
    queue = raw.get("queue", "")
    if not isinstance(queue, str) or len(queue) > MAX_NAME_LENGTH:
        raise InvalidSchedule(f"queue must be a queue name, got {queue!r}")
    priority = raw.get("priority")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not -100 <= priority <= 100
    ):
        raise InvalidSchedule(f"priority must be a whole number from -100 to 100, got {priority!r}")
    catch_up = raw.get("catch_up", DEFAULT_CATCH_UP)
    if catch_up not in CATCH_UP_POLICIES:
        raise InvalidSchedule(
            f"catch_up must be one of {', '.join(CATCH_UP_POLICIES)}, got {catch_up!r}"
        )
    skip_if_running = raw.get("skip_if_running", False)
    if not isinstance(skip_if_running, bool):
        raise InvalidSchedule(f"skip_if_running must be true or false, got {skip_if_running!r}")
    return ScheduleSpec(
        name=name,
        timing=timing,
        task_path=task.strip() if isinstance(task, str) else "",
        command=command.strip() if isinstance(command, str) else "",
        args=args,
        kwargs=kwargs,
        queue_name=queue,
        priority=priority,
        catch_up=catch_up,
        skip_if_running=skip_if_running,
    )


def spec_problems(raw: object, default_timezone: str) -> list[str]:
    """Every problem in ``OPTIONS["SCHEDULES"]``, each naming its schedule."""
    if not isinstance(raw, dict):
        return [
            f"OPTIONS['SCHEDULES'] must be a dict of name -> schedule, got {type(raw).__name__}."
        ]
    problems = []
    for name, entry in raw.items():
        try:
            parse_spec(name, entry, default_timezone)
        except InvalidSchedule as exc:
            problems.append(f"OPTIONS['SCHEDULES'][{name!r}]: {exc}.")
    return problems


def check_row(row: Any) -> dict[str, str]:
    """Field -> problem for a ``Schedule`` row being edited (the admin's validation)."""
    problems: dict[str, str] = {}
    if bool(row.task_path) == bool(row.command):
        problems["task_path"] = "Give exactly one of a task path and a command."
    elif row.task_path and "." not in row.task_path:
        problems["task_path"] = "An import path such as myapp.tasks.send_report."
    if not row.cron and row.interval is None:
        problems["cron"] = "Give a cron expression or an interval."
    elif row.cron and row.interval is not None:
        problems["interval"] = "Give a cron expression or an interval, not both."
    elif row.cron:
        try:
            row.cron = normalize_cron(row.cron)
        except InvalidSchedule as exc:
            problems["cron"] = f"The {exc}."
    elif row.interval < 1:
        problems["interval"] = "At least 1 second."
    if row.timezone:
        try:
            load_zone(row.timezone)
        except InvalidSchedule as exc:
            problems["timezone"] = f"The {exc}."
    if row.priority is not None and not TASK_MIN_PRIORITY <= row.priority <= TASK_MAX_PRIORITY:
        problems["priority"] = f"A whole number from {TASK_MIN_PRIORITY} to {TASK_MAX_PRIORITY}."
    if not isinstance(row.args, list):
        problems["args"] = "A JSON list."
    if not isinstance(row.kwargs, dict):
        problems["kwargs"] = "A JSON object."
    return problems
