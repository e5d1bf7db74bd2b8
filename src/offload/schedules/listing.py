"""What ``manage.py offload schedules`` and the admin show about a schedule.

The listing shows what settings and code define, whether a worker has copied it
to the table yet or not, beside the schedules made in the admin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.db import connections

from offload.schedules.firing import timing_of
from offload.schedules.sync import defined_schedules, row_values

if TYPE_CHECKING:
    from offload.backend import DatabaseBackend
    from offload.models import Schedule

NOT_SYNCED = "not synced yet"
CHANGED = "changed in code since the last sync"
BROKEN = "broken"


def target(row: Schedule) -> str:
    """What the schedule runs, as a person would type it, arguments included."""
    if row.command:
        words = ["manage.py", row.command, *map(str, row.args)]
        if row.kwargs:
            words.append(f"(options {json.dumps(row.kwargs, sort_keys=True)})")
        return " ".join(words)
    arguments = [json.dumps(value) for value in row.args]
    arguments += [f"{key}={json.dumps(value)}" for key, value in sorted(row.kwargs.items())]
    return f"{row.task_path}({', '.join(arguments)})" if arguments else row.task_path


@dataclass
class Listing:
    """The schedules of one backend, by name, and a note on those the table
    does not hold as code defines them."""

    rows: list[Schedule] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def gather(backend: DatabaseBackend) -> Listing:
    """Every schedule of ``backend``: the table's rows, with what code defines
    put in place of rows not synced yet, or synced before the code changed."""
    from offload.models import Schedule

    database = backend.config.database
    stored = {
        row.name: row for row in Schedule.objects.using(database).filter(backend=backend.alias)
    }
    found = defined_schedules(backend)
    listing = Listing()
    for name, spec in found.specs.items():
        row = stored.get(name)
        values = row_values(spec)
        if row is None:
            stored[name] = Schedule(backend=backend.alias, name=name, from_code=True, **values)
            listing.notes[name] = NOT_SYNCED
        elif any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            listing.notes[name] = CHANGED
    for name, problem in found.errors.items():
        row = stored.setdefault(name, Schedule(backend=backend.alias, name=name, from_code=True))
        row.last_error = problem
        listing.notes[name] = BROKEN
    listing.rows = [stored[name] for name in sorted(stored)]
    return listing


def show(backend: DatabaseBackend, count: int) -> str:
    """The text of ``manage.py offload schedules`` for ``backend``."""
    from offload.store.base import database_now

    listing = gather(backend)
    if not listing.rows:
        return (
            "No schedules. None in OPTIONS['SCHEDULES'], none declared with "
            "@schedule, none made in the admin."
        )
    now = database_now(connections[backend.config.database])
    return "\n".join(lines(listing.rows, now, count, listing.notes))


def upcoming(row: Schedule, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``now``, in the schedule's time zone."""
    timing = timing_of(row)
    zone = ZoneInfo(timing.timezone)
    return [fire.astimezone(zone) for fire in timing.upcoming(now, count)]


def describe(row: Schedule) -> str:
    try:
        return timing_of(row).describe()
    except Exception as exc:  # a malformed row is described, never raised
        return f"invalid: {exc}"


def next_fires(row: Schedule, now: datetime, count: int) -> list[datetime] | str:
    """``upcoming``, or why there is none: a broken row is shown, never raised."""
    try:
        fires = upcoming(row, now, count)
    except Exception as exc:  # whatever a malformed row raises, the listing goes on
        return f"cannot fire: {exc}"
    return fires or "cannot fire: no fire time ahead"


def lines(
    rows: list[Schedule], now: datetime, count: int, notes: dict[str, str] | None = None
) -> list[str]:
    """One block per schedule: name, timing, target, state and next fire times."""
    out: list[str] = []
    for row in rows:
        flags = [] if row.enabled else ["paused"]
        if row.from_code:
            flags.append("from code")
        note = (notes or {}).get(row.name)
        if note:
            flags.append(note)
        out.append(f"{row.name}  [{', '.join(flags) or 'active'}]")
        if note == BROKEN:  # its definition cannot be read: nothing more to say
            out.append(f"  error     {row.last_error}")
            continue
        out.append(f"  runs      {target(row)}")
        overlap = ", skips a tick while its last run is pending" if row.skip_if_running else ""
        out.append(f"  when      {describe(row)}, catch-up {row.catch_up}{overlap}")
        if row.last_fired_at:
            out.append(f"  last tick {row.last_fired_at.isoformat()}")
        if row.last_error:
            at = row.last_error_at.isoformat() if row.last_error_at else "?"
            out.append(f"  error     {row.last_error} (at {at})")
        if not row.enabled:
            continue
        fires = next_fires(row, now, count)
        if isinstance(fires, str):
            out.append(f"  next      {fires}")
        else:
            out.append("  next      " + ", ".join(fire.isoformat() for fire in fires))
    return out
