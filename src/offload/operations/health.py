"""``offload health``: yes or no for probes and alerts, as an exit code.

Exit codes (docs/operations.md#health-checks-and-probes):

* 0 (``HEALTHY``): every check asked for passed;
* 1 (``UNHEALTHY``): a check failed (no live worker, lag, failures, an old or
  missing heartbeat file);
* 2 (``USAGE``): the command line or the settings are wrong;
* 3 (``DATABASE``): the database does not answer, or offload's migrations are
  not all applied on it.

A warning (``vacuum``: something has held back PostgreSQL's VACUUM for longer
than ``OPTIONS["VACUUM_BLOCKER_WARNING"]``) is reported but never changes the
exit code: a probe that restarts the worker would not end someone else's
transaction, and the queue still works, only slower as the table bloats.

Each check is one or a few bounded reads (see ``offload.store.reads``), so a
probe answers in milliseconds with a million rows in the table. The liveness
check reads no database at all: only the heartbeat file's modification time.
"""

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

from offload.backend import DatabaseBackend
from offload.operations import status_text
from offload.store import reads, vacuum
from offload.store.base import database_now
from offload.tables import tables_message, unapplied

HEALTHY, UNHEALTHY, USAGE, DATABASE = 0, 1, 2, 3
SHAPE_VERSION = 1
MAX_WORKER_ROWS = 1000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    value: float | int | None = None
    limit: float | int | None = None
    # A passing check that still has something to say (never fails the probe).
    warning: bool = False


@dataclass(frozen=True)
class HealthRequest:
    worker: bool = False
    queues: Sequence[str] = ()
    max_lag: float | None = None
    max_failures: int | None = None
    window: float = 3600.0


@dataclass
class Report:
    code: int = HEALTHY
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check, failing: int = UNHEALTHY) -> None:
        self.checks.append(check)
        if not check.ok:
            self.code = max(self.code, failing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": SHAPE_VERSION,
            "healthy": self.code == HEALTHY,
            "exit_code": self.code,
            "checks": [asdict(check) for check in self.checks],
        }

    def as_text(self) -> str:
        word = {HEALTHY: "healthy", UNHEALTHY: "unhealthy", DATABASE: "database problem"}
        lines = [word.get(self.code, "unhealthy")]
        lines += [f"  {_mark(c)} {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)


def _mark(check: Check) -> str:
    if not check.ok:
        return "FAIL"
    return "WARN" if check.warning else "ok  "


def _database(using: str) -> Check:
    try:
        missing = unapplied(using)
    except (DatabaseError, ImproperlyConfigured) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("database", False, f"database {using!r} does not answer: {detail}")
    if missing:
        return Check("database", False, f"{tables_message(using)} (not applied: {missing[0]})")
    return Check("database", True, f"database {using!r} answers; offload's tables are migrated")


def _worker(backend: DatabaseBackend, queues: Sequence[str], now: Any) -> Check:
    options = backend.config
    since = now - timedelta(seconds=options.lease_seconds)
    labels = reads.live_worker_labels(options.database, backend.alias, since, MAX_WORKER_ROWS)
    if not queues:
        ok = bool(labels)
        detail = f"{len(labels)} live worker process(es)" if ok else "no live worker process"
        return Check("worker", ok, detail, len(labels))
    unserved = [q for q in queues if not any(reads.serves(label, q) for label in labels)]
    if unserved:
        return Check("worker", False, f"no live worker serves {', '.join(unserved)}", len(labels))
    return Check("worker", True, f"live workers serve {', '.join(queues)}", len(labels))


def _lag(using: str, queues: Sequence[str], limit: float, now: Any) -> Check:
    oldest = reads.oldest_due(using, now, list(queues) or None)
    age = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
    where = f" in {', '.join(queues)}" if queues else ""
    detail = (
        f"no task due{where}"
        if oldest is None
        else f"oldest due task{where} waits {age:.1f}s (limit {limit:g}s)"
    )
    return Check("lag", age <= limit, detail, round(age, 3), limit)


def _failures(using: str, limit: int, window: float, now: Any) -> Check:
    count = reads.failures_since(using, now - timedelta(seconds=window), limit + 1)
    shown = f"more than {limit}" if count > limit else str(count)
    detail = f"{shown} failed task(s) in the last {window:g}s (limit {limit})"
    return Check("failures", count <= limit, detail, count, limit)


def _vacuum(using: str, threshold: float) -> Check:
    section = vacuum.section(using, threshold)
    found = section["blockers"]
    if not found:
        detail = f"nothing has held back VACUUM for more than {threshold:g}s"
        return Check("vacuum", True, detail, None, threshold)
    oldest = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    detail = f"held back VACUUM: {status_text.describe_blocker(oldest)}{more}"
    return Check("vacuum", True, detail, oldest["age_seconds"], threshold, warning=True)


def check(backend: DatabaseBackend, request: HealthRequest) -> Report:
    """Run the checks ``request`` asks for, the database's first."""
    report = Report()
    using = backend.config.database
    report.add(_database(using), failing=DATABASE)
    if report.code:
        return report
    try:
        now = database_now(connections[using])
        if request.worker:
            report.add(_worker(backend, request.queues, now))
        if request.max_lag is not None:
            report.add(_lag(using, request.queues, request.max_lag, now))
        if request.max_failures is not None:
            report.add(_failures(using, request.max_failures, request.window, now))
        threshold = backend.config.vacuum_blocker_warning
        if threshold is not None and vacuum.supported(using):
            report.add(_vacuum(using, threshold))
    except DatabaseError as exc:
        report.add(Check("database", False, f"a read failed: {exc}"), failing=DATABASE)
    return report


def liveness(path: str, max_age: float) -> Report:
    """Whether the heartbeat file at ``path`` was written in the last ``max_age``
    seconds: its modification time only, no database."""
    report = Report()
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        report.add(Check("heartbeat_file", False, f"{path} does not exist", None, max_age))
        return report
    except OSError as exc:
        report.add(Check("heartbeat_file", False, f"{path}: {exc.strerror}", None, max_age))
        return report
    age = max(age, 0.0)
    detail = f"{path} written {age:.1f}s ago (limit {max_age:g}s)"
    report.add(Check("heartbeat_file", age <= max_age, detail, round(age, 3), max_age))
    return report
