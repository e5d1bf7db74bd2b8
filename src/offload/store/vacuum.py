"""What holds back VACUUM on the task table: the bloat guard's read.

A queue table is updated two or three times per task and then deleted; on
PostgreSQL each of those leaves a dead row that only VACUUM removes, and VACUUM
may remove only the rows no open snapshot can still see. One transaction left
open for hours (an idle ``psql``, a stuck report, a prepared transaction
nobody committed, a replication slot whose consumer went away) is enough for
the table and its claim index to fill with dead rows. This read names them.

It reads three catalog views (``Vendor.vacuum_blockers``), never offload's
tables, and takes no lock: cheap enough for every ``offload health`` probe.
Other engines have nothing to report (the SQL is None there).

Where autovacuum is off, for the server or for the table, nothing removes
those dead rows at all, and the claim's index scan steps over more of them on
every claim. The elected pruner then vacuums the table itself
(``vacuum_due``, ``vacuum``) once the dead rows pass the same kind of
threshold autovacuum would use: a floor plus a share of the live rows.
"""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db import connections

from offload.store.base import TABLE
from offload.store.vendor import read_datetime, vendor_for

# The most blockers named at once: the oldest is the one to end first.
MAX_BLOCKERS = 5
# The pruner vacuums once dead rows exceed this many plus this share of the live rows.
DEAD_FLOOR = 1000
DEAD_SHARE = 0.05


@dataclass(frozen=True)
class VacuumBlocker:
    # "transaction", "prepared transaction" or "replication slot".
    kind: str
    # The server process (a session's, or the one that uses an active slot).
    pid: int | None
    # The session's user, the prepared transaction's gid, or the slot's name.
    name: str
    # The session's application_name, the prepared transaction's owner, or
    # the slot's type (physical, logical).
    application_name: str | None
    client: str | None
    # The session's state ("idle in transaction", "active"), "prepared",
    # or "inactive" for a slot.
    state: str | None
    # When the transaction began, was prepared, or the slot went inactive
    # (None: the server does not record it, before PostgreSQL 17).
    since: datetime | None
    query_start: datetime | None
    age_seconds: float | None
    # How many transactions old its snapshot is (what vacuum cannot pass).
    xmin_age: int | None

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        for key in ("since", "query_start"):
            found[key] = None if found[key] is None else found[key].isoformat()
        return found


def _row(row: tuple[Any, ...]) -> VacuumBlocker:
    kind, pid, name, app, client, state, since, query_start, age, xmin_age = row
    return VacuumBlocker(
        kind=kind, pid=pid, name=name, application_name=app, client=client, state=state,
        since=read_datetime(since), query_start=read_datetime(query_start),
        age_seconds=None if age is None else round(float(age), 3),
        xmin_age=None if xmin_age is None else int(xmin_age),
    )  # fmt: skip


def supported(using: str) -> bool:
    """Whether the engine of ``using`` can have anything to report."""
    return vendor_for(connections[using]).vacuum_blockers is not None


def vacuum_blockers(using: str, older_than: float) -> list[VacuumBlocker]:
    """What has held back VACUUM in ``using``'s database for more than
    ``older_than`` seconds, the oldest snapshot first (empty where the engine
    has no such thing)."""
    sql = vendor_for(connections[using]).vacuum_blockers
    if sql is None:
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [older_than, older_than, older_than, MAX_BLOCKERS])
        return [_row(row) for row in cursor.fetchall()]


def section(using: str, threshold: float | None) -> dict[str, Any]:
    """What has held back VACUUM for longer than ``threshold`` seconds, as the
    JSON-ready part of ``offload status`` and the dashboard; ``checked`` is
    false where nothing was looked at (``threshold`` None, or an engine other
    than PostgreSQL)."""
    checked = threshold is not None and supported(using)
    found = vacuum_blockers(using, threshold) if checked and threshold is not None else []
    return {
        "warning_seconds": threshold,
        "checked": checked,
        "blockers": [b.as_dict() for b in found],
    }


def vacuum_due(using: str, just_deleted: int = 0) -> bool:
    """Whether the task table needs a VACUUM that autovacuum will not run.

    ``just_deleted``: rows this connection has just deleted. A backend sends
    its counts to the statistics at most once a second, and the pruner asks
    right after its deletes: without them it would see its own dead rows only
    at its next turn, minutes later.
    """
    sql = vendor_for(connections[using]).dead_rows
    if sql is None:
        return False
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [TABLE])
        row = cursor.fetchone()
    if row is None:
        return False
    autovacuum, live, dead = row
    # Counted at most twice if the statistics already have them: a VACUUM a
    # little early, never one missed.
    dead, live = dead + just_deleted, max(0, live - just_deleted)
    return not autovacuum and dead > DEAD_FLOOR + DEAD_SHARE * live


def vacuum(using: str) -> None:
    """VACUUM (ANALYZE) the task table; in autocommit (it cannot run in a transaction)."""
    sql = vendor_for(connections[using]).vacuum
    if sql is not None:
        with connections[using].cursor() as cursor:
            cursor.execute(sql.format(table=TABLE))
