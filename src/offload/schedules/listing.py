"""What ``manage.py offload schedules`` and the admin show about a schedule."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from offload.schedules.firing import timing_of

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
    except Exception as exc:  # a malformed row is described, never raised
        return f"invalid: {exc}"


def next_fires(row: Schedule, now: datetime, count: int) -> list[datetime] | str:
    """``upcoming``, or why there is none: a broken row is shown, never raised."""
    try:
        fires = upcoming(row, now, count)
    except Exception as exc:  # whatever a malformed row raises, the listing goes on
        return f"cannot fire: {exc}"
    return fires or "cannot fire: no fire time ahead"


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
