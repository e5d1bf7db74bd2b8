"""Copy the schedules defined in code (settings and ``@schedule``) into the table.

Run at worker start. Rows from code are marked ``from_code``; the admin keeps
their definition read-only (the next sync would overwrite it) but may pause
them: ``enabled`` is the one column a sync never touches. A row whose timing
changed starts again from the next tick; code schedules that are gone are
deleted, with their fire history.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.module_loading import autodiscover_modules

from offload.limits import MAX_NAME_LENGTH, MAX_TASK_PATH_LENGTH
from offload.schedules.registry import registered
from offload.schedules.spec import InvalidSchedule, ScheduleSpec, parse_spec

if TYPE_CHECKING:
    from offload.backend import DatabaseBackend

logger = logging.getLogger("offload.scheduler")


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)


@dataclass
class CodeSchedules:
    """What code and settings define for one backend: the schedules that parse,
    the raw definition of each name (good or bad), and each bad one's error."""

    specs: dict[str, ScheduleSpec] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [*self.errors.values(), *self.duplicates]


def defined_schedules(backend: DatabaseBackend) -> CodeSchedules:
    """The schedules defined in code and settings for ``backend``, each bad one
    with its own error. Imports every app's ``tasks`` module first, so
    ``@schedule`` has run."""
    autodiscover_modules("tasks")
    zone = settings.TIME_ZONE or "UTC"
    found = CodeSchedules()
    for where, raw in (
        ("OPTIONS['SCHEDULES']", backend.config.schedules),
        ("@schedule", registered(backend.alias)),
    ):
        for name, entry in raw.items():
            if name in found.raw:
                found.duplicates.append(
                    f"{where}[{name!r}]: a schedule of that name is already defined."
                )
                continue
            found.raw[name] = entry
            try:
                found.specs[name] = parse_spec(name, entry, zone)
            except InvalidSchedule as exc:
                found.errors[name] = f"{where}[{name!r}]: {exc}."
    return found


def code_schedules(backend: DatabaseBackend) -> tuple[dict[str, ScheduleSpec], list[str]]:
    """The schedules defined in code for ``backend``, and the problems found."""
    found = defined_schedules(backend)
    return found.specs, found.problems


def row_values(spec: ScheduleSpec) -> dict[str, Any]:
    """The Schedule columns a spec defines."""
    return {
        "task_path": spec.task_path,
        "command": spec.command,
        "cron": spec.timing.cron or "",
        "interval": spec.timing.interval,
        "timezone": spec.timing.timezone,
        "args": spec.args,
        "kwargs": spec.kwargs,
        "queue_name": spec.queue_name,
        "priority": spec.priority,
        "catch_up": spec.catch_up,
        "skip_if_running": spec.skip_if_running,
    }


_TIMING = ("cron", "interval", "timezone")

# A row whose definition in code is broken waits with this next fire time, which
# the scheduler never reaches: it must not go on firing the old definition.
HELD_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)


def _is_held(moment: datetime | None) -> bool:
    return moment is not None and moment >= HELD_UNTIL


def _hold_broken(database: str, alias: str, name: object, raw: object, problem: str) -> None:
    """Keep a row for a schedule whose definition is broken, held back from
    firing and showing the error (in the admin, ``check --database`` and
    ``offload schedules``): the old row if there is one, else a new row with
    what can be read of the definition."""
    from django.utils import timezone

    from offload.models import Schedule
    from offload.schedules.errors import MAX_ERROR_CHARS

    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
        return  # no row can bear that name: the log and check say it
    error = problem[:MAX_ERROR_CHARS]
    rows = Schedule.objects.using(database).filter(backend=alias, name=name)
    if not rows.exists():
        entry = raw if isinstance(raw, dict) else {}
        target = {
            column: entry[key]
            for key, column, most in (
                ("task", "task_path", MAX_TASK_PATH_LENGTH),
                ("command", "command", MAX_NAME_LENGTH),
            )
            if isinstance(entry.get(key), str) and len(entry[key]) <= most
        }
        # IntegrityError: another worker made it meanwhile.
        with contextlib.suppress(IntegrityError), transaction.atomic(using=database):
            rows.create(
                backend=alias, name=name, from_code=True, last_error=error,
                last_error_at=timezone.now(), next_fire_at=HELD_UNTIL, **target,
            )  # fmt: skip
        return
    rows = rows.filter(from_code=True)
    rows.exclude(last_error=error).update(last_error=error, last_error_at=timezone.now())
    rows.update(next_fire_at=HELD_UNTIL)


def sync(backend: DatabaseBackend) -> SyncReport:
    """Make the table's code schedules for ``backend`` match the code."""
    from offload.models import Schedule

    found = defined_schedules(backend)
    specs = found.specs
    for problem in found.duplicates:
        logger.error("Schedule not synced: %s", problem)
    database = backend.config.database
    report = SyncReport()
    for name, problem in found.errors.items():
        logger.error("Schedule not synced, the others go on: %s", problem)
        report.broken.append(name)
        _hold_broken(database, backend.alias, name, found.raw.get(name), problem)
    for name, spec in specs.items():
        values = row_values(spec)
        try:
            with transaction.atomic(using=database):
                row = (
                    Schedule.objects.using(database)
                    .select_for_update()
                    .filter(backend=backend.alias, name=name)
                    .first()
                )
                if row is None:
                    Schedule.objects.using(database).create(
                        backend=backend.alias, name=name, from_code=True, **values
                    )
                    report.created.append(name)
                    continue
                changed = {k: v for k, v in values.items() if getattr(row, k) != v}
                if not changed and row.from_code and not _is_held(row.next_fire_at):
                    continue
                for key, value in changed.items():
                    setattr(row, key, value)
                row.from_code = True
                held = _is_held(row.next_fire_at)
                if held or any(key in changed for key in _TIMING):
                    row.next_fire_at = None  # start again from the next tick
                if held:
                    row.last_error, row.last_error_at = "", None
                row.save(using=database)
                report.updated.append(name)
        except IntegrityError:
            continue  # another worker created it at the same moment
    gone = Schedule.objects.using(database).filter(backend=backend.alias, from_code=True)
    # A broken definition keeps its row (and its error): fixing a typo in
    # settings must not lose the schedule's fire history.
    gone = gone.exclude(name__in=[*specs, *found.errors])
    report.deleted = sorted(gone.values_list("name", flat=True))
    if report.deleted:
        gone.delete()
    for label, names in (("created", report.created), ("updated", report.updated),
                         ("deleted", report.deleted)):  # fmt: skip
        if names:
            logger.info("Schedules %s from code: %s", label, ", ".join(names))
    return report
