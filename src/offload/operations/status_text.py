"""``offload status`` for a person: the dict of ``status.collect`` as aligned text."""

from typing import Any


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = abs(value)
    if value < 60:
        return f"{value:.0f}s"
    if value < 3600:
        return f"{value // 60:.0f}m{value % 60:02.0f}s"
    if value < 86400:
        return f"{value // 3600:.0f}h{value % 3600 // 60:02.0f}m"
    return f"{value // 86400:.0f}d{value % 86400 // 3600:02.0f}h"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]


def _queues(data: dict[str, Any]) -> list[str]:
    rows = [
        [q["name"], str(q["ready"]), str(q["due"]), str(q["running"]),
         _seconds(q["oldest_due_age_seconds"]),
         f"paused by {q['paused_by']}" if q["paused"] and q["paused_by"]
         else "paused" if q["paused"] else ""]
        for q in data["queues"]
    ]  # fmt: skip
    if not rows:
        return ["Queues: none"]
    lines = ["Queues:", *_table(["NAME", "READY", "DUE", "RUNNING", "OLDEST DUE", ""], rows)]
    if data["blocked"]:
        waiting = ", ".join(f"{q['name']} {q['blocked']}" for q in data["queues"] if q["blocked"])
        lines.append(f"  Waiting on a concurrency or rate limit: {data['blocked']} ({waiting})")
    if data["waiting"]:
        waiting = ", ".join(f"{q['name']} {q['waiting']}" for q in data["queues"] if q["waiting"])
        lines.append(f"  Waiting on upstream tasks of a workflow: {data['waiting']} ({waiting})")
    return lines


def _workers(data: dict[str, Any]) -> list[str]:
    lines = [f"Workers: {data['live_processes']} live, {data['stale_processes']} stale process(es)"]
    for w in data["workers"]:
        state = " STALE" if w["stale"] else ""
        lines.append(
            f"  {w['hostname']} pid {w['supervisor_pid']}: {w['process_count']}x{w['threads']}, "
            f"queues {w['queues']}, heartbeat {_seconds(w['heartbeat_age_seconds'])} ago{state}"
        )
        for p in w["processes"]:
            stale = " (stale)" if p["stale"] else ""
            tasks = ", ".join(f"#{t['id']} {t['task_path']}" for t in p["current_tasks"])
            lines.append(
                f"    {p['name']} pid {p['pid']}: heartbeat "
                f"{_seconds(p['heartbeat_age_seconds'])} ago{stale}"
                + (f"; running {tasks}" if tasks else "; idle")
            )
    return lines


def _schedules(data: dict[str, Any]) -> list[str]:
    if not data["schedules"]:
        return ["Schedules: none"]
    rows = []
    for s in data["schedules"]:
        upcoming = s["next_fire_in_seconds"]
        if not s["enabled"]:
            nxt = "paused"
        elif upcoming is None:
            nxt = "-"
        else:
            nxt = f"{s['next_fire_at']} (in {_seconds(upcoming)})"
            if upcoming < 0:
                nxt = f"{s['next_fire_at']} ({_seconds(upcoming)} late)"
        error = "error: " + s["last_error"].splitlines()[0][:80] if s["last_error"] else ""
        rows.append([s["name"], nxt, s["last_fired_at"] or "never", error])
    return ["Schedules:", *_table(["NAME", "NEXT FIRE", "LAST FIRE", ""], rows)]


def _vacuum(data: dict[str, Any]) -> list[str]:
    section = data["vacuum"]
    if not section["checked"]:
        return []
    limit = _seconds(section["warning_seconds"])
    if not section["blockers"]:
        return ["", f"Vacuum: nothing has held it back for more than {limit}"]
    return [
        "",
        f"WARNING: held back VACUUM for more than {limit} (the tables bloat until it ends):",
        *("  " + describe_blocker(b) for b in section["blockers"]),
    ]


def describe_blocker(b: dict[str, Any]) -> str:
    """One line naming what holds vacuum back (an entry of ``vacuum.blockers``)."""
    age = _seconds(b["age_seconds"]) if b["age_seconds"] is not None else "an unknown time"
    if b["kind"] == "transaction":
        client = f", from {b['client']}" if b["client"] else ""
        return (
            f"transaction of pid {b['pid']} ({b['application_name'] or 'no application_name'}, "
            f"user {b['name']}{client}), {b['state']}, open {age}, "
            f"began {b['since']}, last query started {b['query_start'] or '-'}"
        )
    if b["kind"] == "prepared transaction":
        return f"prepared transaction {b['name']!r} (owner {b['application_name']}), {age} old"
    return f"{b['state']} {b['application_name']} replication slot {b['name']!r}, {age}"


def render(data: dict[str, Any]) -> str:
    failures = data["failures"]
    count = f"more than {failures['count']}" if failures["capped"] else str(failures["count"])
    lines = [
        f"offload status: backend {data['backend']!r}, database {data['database']!r}, "
        f"at {data['generated_at']}",
        "",
        *_queues(data),
        "",
        *_workers(data),
        "",
        f"Failures in the last hour: {count}",
        "",
        *_schedules(data),
        *_vacuum(data),
    ]
    return "\n".join(line.rstrip() for line in lines)
