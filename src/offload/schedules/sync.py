"""Copy the schedules defined in code (settings and ``@schedule``) into the table.

Run at worker start. Rows from code are marked ``from_code``; the admin keeps
their definition read-only (the next sync would overwrite it) but may pause
them: ``enabled`` is the one column a sync never touches. A row whose timing
changed starts again from the next tick; code schedules that are gone are
deleted, with their fire history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.module_loading import autodiscover_modules

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


def code_schedules(backend: DatabaseBackend) -> tuple[dict[str, ScheduleSpec], list[str]]:
    """The schedules defined in code for ``backend``, and the problems found.

    Imports every app's ``tasks`` module first, so ``@schedule`` has run.
    """
    autodiscover_modules("tasks")
    zone = settings.TIME_ZONE or "UTC"
    specs: dict[str, ScheduleSpec] = {}
    problems: list[str] = []
    for where, raw in (
        ("OPTIONS['SCHEDULES']", backend.config.schedules),
        ("@schedule", registered(backend.alias)),
    ):
        for name, entry in raw.items():
            if name in specs:
                problems.append(f"{where}[{name!r}]: a schedule of that name is already defined.")
                continue
            try:
                specs[name] = parse_spec(name, entry, zone)
            except InvalidSchedule as exc:
                problems.append(f"{where}[{name!r}]: {exc}.")
    return specs, problems


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


def sync(backend: DatabaseBackend) -> SyncReport:
    """Make the table's code schedules for ``backend`` match the code."""
    from offload.models import Schedule

    specs, problems = code_schedules(backend)
    for problem in problems:
        logger.error("Schedule not synced: %s", problem)
    database = backend.config.database
    report = SyncReport()
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
                if not changed and row.from_code:
                    continue
                for key, value in changed.items():
                    setattr(row, key, value)
                row.from_code = True
                if any(key in changed for key in _TIMING):
                    row.next_fire_at = None  # start again from the next tick
                row.save(using=database)
                report.updated.append(name)
        except IntegrityError:
            continue  # another worker created it at the same moment
    gone = Schedule.objects.using(database).filter(backend=backend.alias, from_code=True)
    gone = gone.exclude(name__in=list(specs))
    report.deleted = sorted(gone.values_list("name", flat=True))
    if report.deleted:
        gone.delete()
    for label, names in (("created", report.created), ("updated", report.updated),
                         ("deleted", report.deleted)):  # fmt: skip
        if names:
            logger.info("Schedules %s from code: %s", label, ", ".join(names))
    return report
