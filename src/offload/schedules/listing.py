"""What ``manage.py offload schedules`` and the admin show about a schedule."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from offload.schedules.firing import timing_of
from offload.schedules.spec import InvalidSchedule

if TYPE_CHECKING:
    from offload.models import Schedule


def target(row: Schedule) -> str:
    """What the schedule runs, as a person would type it."""
    if row.command:
        return " ".join(["manage.py", row.command, *map(str, row.args)])
    return row.task_path


def upcoming(row: Schedule, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times after ``now``, in the schedule's time zone."""
    timing = timing_of(row)
    zone = ZoneInfo(timing.timezone)
    return [fire.astimezone(zone) for fire in timing.upcoming(now, count)]


def describe(row: Schedule) -> str:
    try:
        return timing_of(row).describe()
    except InvalidSchedule as exc:
        return f"invalid: {exc}"


def lines(rows: list[Schedule], now: datetime, count: int) -> list[str]:
    """One block per schedule: name, timing, target, state and next fire times."""
    out: list[str] = []
    for row in rows:
        flags = [] if row.enabled else ["paused"]
        if row.from_code:
            flags.append("from code")
        out.append(f"{row.name}  [{', '.join(flags) or 'active'}]")
        out.append(f"  runs      {target(row)}")
        overlap = ", skips a tick while its last run is pending" if row.skip_if_running else ""
        out.append(f"  when      {describe(row)}, catch-up {row.catch_up}{overlap}")
        if row.last_fired_at:
            out.append(f"  last tick {row.last_fired_at.isoformat()}")
        if not row.enabled:
            continue
        try:
            fires = upcoming(row, now, count)
        except InvalidSchedule:
            continue
        out.append("  next      " + ", ".join(fire.isoformat() for fire in fires))
    return out
