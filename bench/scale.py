"""Scale figures: the claim and the drain on a big task table.

    python -m bench.scale [--db postgres|sqlite|mariadb] [--finished N] [--ready M]
                          [--claims K] [--drain D] [--concurrency 1x1,2x4,4x4] [--json PATH]

What the performance issue asks for: drain rate and claim latency with
1,000,000 finished rows and 100,000 ready rows in the table, the claim still
an index scan (the plan is shown), and up to 4 worker processes against one
database. One database per run, in this process (Django's settings are fixed
once ``django.setup()`` has run):

1. A fresh ``offload_bench`` database (a temporary file for SQLite), migrated,
   as ``bench.run`` makes it; filled with set-based SQL (``generate_series``
   on PostgreSQL, MariaDB's SEQUENCE engine, a recursive CTE on SQLite) with
   N finished and M ready rows of ``bench.tasks.noop``, copied from one task
   enqueued through the real API so every column is what an enqueue writes;
   then VACUUM/ANALYZE.
2. The claim's plan (``TaskStore.explain_claim``) per kind of claim, flagged
   when it sorts.
3. K claims of 10 through ``TaskStore.claim`` on a private connection (as a
   worker holds one), each followed by ``complete_many`` of what it took.
4. For each concurrency, a burst ``offload worker`` drains a slice of D of the
   M ready rows; the rate is counted from the slice's first ``started_at`` to
   its last ``finished_at``, as ``bench.workloads`` counts a drain.

The database is dropped at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import django
from django.core.management import call_command

from bench.plans import CLAIM_KINDS, optimize, plan
from bench.run import (
    EXIT_UNREACHABLE,
    ROOT,
    Unreachable,
    concurrencies,
    display_path,
    drop_database,
    git_state,
    interrupt_once,
    positive_int,
    recreate_database,
    subprocess_env,
)
from bench.workloads import BenchError, percentile

if TYPE_CHECKING:
    from offload.store.tasks import TaskStore

# Imported where they are used: offload's store and models, bench.tasks and
# bench.systems need django.setup(), which runs only once the database is chosen.

DATABASES = ("postgres", "sqlite", "mariadb")
DEFAULT_JSON = ROOT / "bench" / "results" / "scale.json"
TABLE = "offload_task"
CLAIM_LIMIT = 10
LEASE_SECONDS = 300.0
# Rows per INSERT ... SELECT: big enough that the statement is the cost, small
# enough to show progress every few seconds.
FILL_CHUNK = 100_000
# Claims of async tasks (there are none here) to time: each reads past every
# ready sync task, so they are slower and fewer are enough.
EMPTY_CLAIMS = 20
# The rows a drain must not take wait until then: READY, but not due.
HOLD_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)
WORKER_ID = "bench-scale"
# The options the JSON records.
PARAMETERS = ("finished", "ready", "claims", "drain", "concurrency")


def log(message: str) -> None:
    # Progress goes to stderr so that stdout holds only the table.
    print(f"scale: {message}", file=sys.stderr, flush=True)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="Claim latency and drain rate of offload on a big task table.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--db", choices=DATABASES, default="postgres", help="The database.")
    parser.add_argument("--finished", type=non_negative_int, default=1_000_000,
                        help="SUCCESSFUL rows in the table.")  # fmt: skip
    parser.add_argument("--ready", type=positive_int, default=100_000,
                        help="READY rows in the table (topped up before each drain).")  # fmt: skip
    parser.add_argument("--claims", type=positive_int, default=200,
                        help=f"Timed claims of {CLAIM_LIMIT} per kind of claim.")  # fmt: skip
    parser.add_argument("--drain", type=positive_int, default=20_000,
                        help="Tasks each drain runs (a slice of the ready rows).")  # fmt: skip
    parser.add_argument("--concurrency", type=concurrencies, default="1x1,2x4,4x4",
                        help="PROCESSESxTHREADS of each drain, comma-separated.")  # fmt: skip
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help="Where to write the results.")  # fmt: skip
    args = parser.parse_args(argv)
    if args.drain > args.ready:
        parser.error("--drain cannot be more than --ready: a drain takes a slice of them")
    taken = 2 * (args.claims + 1) * CLAIM_LIMIT  # sync and any-kind claims, each + 1 untimed
    if taken > args.ready:
        parser.error(f"--ready must hold the {taken} tasks the timed claims take")
    return args


# -- the run ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_once()
    git = git_state()  # before the run: the code measured, not what changed meanwhile
    scratch = Path(tempfile.mkdtemp(prefix="offload-scale-"))
    # bench.settings reads these when first imported, by django.setup() below
    # and by every worker, which inherits this environment.
    os.environ["OFFLOAD_BENCH_DB"] = args.db
    os.environ["OFFLOAD_BENCH_SQLITE_DIR"] = str(scratch)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    django.setup()
    report: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git,
        "python": platform.python_version(),
        "django": django.get_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "database": args.db,
        "server_version": None,
        "parameters": {
            **{name: getattr(args, name) for name in PARAMETERS},
            "claim_limit": CLAIM_LIMIT,
        },
        "status": "ok",
        "error": None,
        "problems": [],
        "notes": [],
    }
    code = 0
    try:
        log(f"{args.db}: creating a fresh database")
        report["server_version"] = recreate_database(args.db)
        log(f"{args.db}: migrating")
        call_command("migrate", verbosity=0)
        measure(args, report)
    except Unreachable as exc:
        log(f"SKIPPED, {exc}")
        report.update(status="unreachable", error=str(exc))
        code = EXIT_UNREACHABLE
    except BenchError as exc:
        log(f"FAILED, {exc}")
        report.update(status="error", error=str(exc))
        code = 1
    except KeyboardInterrupt:
        log("interrupted; dropping the database, nothing is written")
        drop_database(args.db)
        shutil.rmtree(scratch, ignore_errors=True)
        return 130
    except Exception as exc:
        # Unexpected (a database error, a bug): the traceback is what to look at.
        traceback.print_exc()
        report.update(status="error", error=f"{type(exc).__name__}: {exc}")
        code = 1
    if report["status"] != "unreachable":
        drop_database(args.db)
    shutil.rmtree(scratch, ignore_errors=True)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(format_table(report))
    print(f"\nRaw figures: {display_path(args.json)}")
    if code == 0 and report["problems"]:
        code = 1
    return code


def measure(args: argparse.Namespace, report: dict[str, Any]) -> None:
    from offload.store.connection import open_private
    from offload.store.tasks import TaskStore

    # Django's shared connection, in autocommit: each statement commits.
    store = TaskStore("default")
    filler = Filler.start(store)
    report["fill"] = fill(store, filler, args.finished, args.ready)
    # The plans a worker gets: on a connection of its own, with its session
    # settings (on PostgreSQL, sorts priced out; see store.vendor).
    worker_store = TaskStore("default", connection=open_private("default"))
    try:
        report["plans"] = {
            kind: plan(worker_store, is_async) for kind, is_async in CLAIM_KINDS.items()
        }
    finally:
        worker_store.connection.close()
    for kind, found in report["plans"].items():
        if not found["sorts"]:
            continue
        if CLAIM_KINDS[kind]:
            # No async task is enqueued, and the planner knows it: reading the
            # READY rows and sorting the none it expects to keep is its
            # cheapest plan. Shown, but not what the issue asks about.
            report["notes"].append(f"the {kind} claim's plan sorts (none are enqueued)")
        else:
            report["problems"].append(f"the {kind} claim's plan sorts: {found['sort_lines']}")
    report["claims"] = time_claims(args.claims)
    hold_back(store)
    report["drains"] = [
        drain(store, filler, args, item, report["problems"]) for item in args.concurrency.split(",")
    ]
    report["counts_after"] = counts()


# -- 1. the fill -----------------------------------------------------------------------


@dataclass
class Filler:
    """Inserts rows like ``template``'s, with set-based SQL; row n was enqueued at origin + n ms.

    ``template`` is a task enqueued the real way, so task path, backend, queue,
    priority, kind, retry budget, timeout and arguments are what an enqueue of
    ``bench.tasks.noop`` writes; every row is copied from it.
    """

    store: TaskStore
    template: int
    # A day back, so that every row filled, ready ones too, was enqueued in
    # the past and is due.
    origin: datetime
    next_n: int = 0

    @classmethod
    def start(cls, store: TaskStore) -> Filler:
        from bench.tasks import noop

        origin = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        return cls(store, int(noop.enqueue().id), origin)

    def add(self, count: int, *, finished: bool, label: str, hold: bool = False) -> None:
        """``count`` rows, FILL_CHUNK per committed INSERT ... SELECT."""
        begun = time.perf_counter()
        for first in range(self.next_n, self.next_n + count, FILL_CHUNK):
            last = min(first + FILL_CHUNK, self.next_n + count) - 1
            sql, params = fill_statement(
                self.store, self.template, self.origin, first, last, finished=finished, hold=hold
            )
            with self.store.connection.cursor() as cursor:
                cursor.execute(sql, params)
                wanted = last - first + 1
                if cursor.rowcount != wanted:
                    raise BenchError(f"fill: an INSERT wrote {cursor.rowcount} of {wanted} rows")
            if count > FILL_CHUNK:
                done = last + 1 - self.next_n
                rate = done / (time.perf_counter() - begun)
                log(f"  {label}: {done:,}/{count:,} rows ({rate:,.0f} rows/s)")
        self.next_n += count


def fill(store: TaskStore, filler: Filler, finished: int, ready: int) -> dict[str, Any]:
    """``finished`` SUCCESSFUL rows, then ``ready`` due READY ones; the table optimized."""
    log(f"filling {finished:,} finished and {ready:,} ready rows")
    begun = time.perf_counter()
    filler.add(finished, finished=True, label="finished")
    filler.add(ready, finished=False, label="ready")
    filled = time.perf_counter() - begun
    # The template is not one of the M ready rows. Any row serves as one from
    # now on: only the columns no claim or outcome changes are copied.
    with store.connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [filler.template])
        cursor.execute(f"SELECT MIN(id) FROM {TABLE}")
        filler.template = int(cursor.fetchone()[0])
    log(f"filled {finished + ready:,} rows in {filled:.1f}s; optimizing the table")
    begun = time.perf_counter()
    optimize(store)
    optimized = time.perf_counter() - begun
    log(f"optimized in {optimized:.1f}s")
    return {
        "rows": finished + ready,
        "seconds": filled,
        "rows_per_second": (finished + ready) / filled if filled > 0 else None,
        "optimize_seconds": optimized,
        "counts": counts(),
    }


def fill_statement(
    store: TaskStore,
    template: int,
    origin: datetime,
    first: int,
    last: int,
    *,
    finished: bool,
    hold: bool,
) -> tuple[str, list[Any]]:
    """The INSERT ... SELECT of rows ``first`` to ``last`` and its parameters.

    The columns left out take the defaults a new task has (no lease, no
    progress, no cancel request).
    """
    from offload.states import State

    vendor = store.vendor
    as_json = vendor.json_param  # a JSON parameter, cast where the engine needs it
    at = store.connection.ops.adapt_datetimefield_value(origin)
    prefix, prefix_params, source, source_params = series(vendor.name, first, last)

    def when(ms: int) -> str:
        return plus_ms(vendor.name, f"g.n + {ms}" if ms else "g.n")

    if finished:
        # Claimed once by a worker 1 ms after its enqueue, done 1 ms later.
        times = f"{when(0)}, {when(0)}, {when(1)}, {when(1)}, {when(2)}"
        rest = f"1, {as_json}, t.args, t.kwargs, {as_json}, {as_json}"
        select_params: list[Any] = [State.SUCCESSFUL, at, at, at, at, at,
                                    json.dumps([WORKER_ID]), "[]", "null"]  # fmt: skip
    else:
        # available_at is the enqueue time, as an enqueue without run_after
        # writes it, unless the row is held back (see hold_back).
        available = "%s" if hold else when(0)
        times = f"{available}, {when(0)}, NULL, NULL, NULL"
        rest = f"0, {as_json}, t.args, t.kwargs, {as_json}, NULL"
        held = store.connection.ops.adapt_datetimefield_value(HOLD_UNTIL)
        select_params = [State.READY, held if hold else at, at, "[]", "[]"]
    sql = (
        f"INSERT INTO {TABLE} (task_path, backend, queue_name, priority, status, "
        "is_async, max_attempts, timeout, run_after, available_at, enqueued_at, started_at, "
        "last_attempted_at, finished_at, attempt, worker_ids, args, kwargs, errors, return_value) "
        f"{prefix}SELECT t.task_path, t.backend, t.queue_name, t.priority, %s, t.is_async, "
        f"t.max_attempts, t.timeout, NULL, {times}, {rest} "
        # In n order, so ids grow with enqueued_at as they do when tasks come one by one.
        f"FROM {TABLE} AS t, {source} WHERE t.id = %s ORDER BY g.n"
    )
    return sql, [*prefix_params, *select_params, *source_params, template]


def series(vendor: str, first: int, last: int) -> tuple[str, list[Any], str, list[Any]]:
    """The integers ``first`` to ``last`` as column ``g.n``, generated by the database.

    Returns a WITH clause for the SELECT and its parameters, then a FROM item
    and its parameters.
    """
    if vendor == "postgresql":
        return "", [], "generate_series(%s::bigint, %s::bigint) AS g(n)", [first, last]
    if vendor == "mysql":
        # MariaDB's SEQUENCE engine (on by default since 10.1): a virtual table
        # seq_A_to_B of the integers A to B, read as fast as a recursive CTE is
        # built. Its bounds are part of its name, so they cannot be parameters;
        # they are integers formatted here.
        return "", [], f"(SELECT seq AS n FROM seq_{int(first)}_to_{int(last)}) AS g", []
    # SQLite has no series function built in (generate_series is an extension).
    # The WITH goes with the SELECT, not before the INSERT: Python's sqlite3
    # gives no rowcount for a statement that does not start with INSERT.
    recursive = "WITH RECURSIVE g(n) AS (SELECT %s UNION ALL SELECT n + 1 FROM g WHERE n < %s) "
    return recursive, [first, last], "g", []


def plus_ms(vendor: str, ms: str) -> str:
    """SQL for a datetime parameter (one %s) plus ``ms`` (an SQL expression) milliseconds.

    In each engine's stored format: SQLite's is the text offload's own
    statements write (``vendor.now``), to the millisecond.
    """
    if vendor == "postgresql":
        return f"(%s::timestamptz + ({ms}) * interval '1 millisecond')"
    if vendor == "mysql":
        return f"TIMESTAMPADD(MICROSECOND, ({ms}) * 1000, %s)"
    return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, (({ms}) / 1000.0) || ' seconds')"


def counts() -> dict[str, int]:
    from django.db.models import Count

    from offload.models import TaskRecord

    rows = TaskRecord.objects.values("status").annotate(n=Count("pk")).order_by("status")
    return {row["status"]: row["n"] for row in rows}


# -- 2. the plan ---------------------------------------------------------------------------

# -- 3. claim latency ----------------------------------------------------------------------


def time_claims(claims: int) -> dict[str, Any]:
    """Claims of CLAIM_LIMIT of each kind, timed, on a private connection like a worker's."""
    from offload.store.connection import open_private
    from offload.store.tasks import TaskStore

    store = TaskStore("default", connection=open_private("default"))
    try:
        found: dict[str, Any] = {}
        for kind, is_async in CLAIM_KINDS.items():
            count = EMPTY_CLAIMS if is_async else claims
            log(f"timing {count} claims of {CLAIM_LIMIT} ({kind})")
            found[kind] = time_claim_kind(store, is_async, count)
    finally:
        store.connection.close()
    return found


def time_claim_kind(store: TaskStore, is_async: bool | None, count: int) -> dict[str, Any]:
    """``count`` claims, each followed by ``complete_many`` of what it took.

    Completing them, rather than giving them back, keeps each claim taking
    fresh rows from the front of the backlog, as a draining worker does; the
    ready count falls by CLAIM_LIMIT per claim, a few percent in all.
    """
    # Only sync tasks are enqueued: a claim of async ones finds none, but has
    # to read past all of them to know it.
    expected = 0 if is_async else CLAIM_LIMIT
    claims: list[float] = []
    completes: list[float] = []
    for _ in range(count + 1):  # the first opens the connection: not counted
        begun = time.perf_counter()
        batch = store.claim(WORKER_ID, limit=CLAIM_LIMIT, lease_seconds=LEASE_SECONDS,
                            is_async=is_async)  # fmt: skip
        claims.append((time.perf_counter() - begun) * 1000)
        if len(batch) != expected:
            raise BenchError(f"a claim of {CLAIM_LIMIT} took {len(batch)} tasks, not {expected}")
        if not batch:
            continue
        begun = time.perf_counter()
        written = store.complete_many([(task.id, task.attempt, "null", 0.0) for task in batch])
        completes.append((time.perf_counter() - begun) * 1000)
        if len(written) != len(batch):
            raise BenchError(f"complete_many recorded {len(written)} of {len(batch)} tasks")
    claims, completes = sorted(claims[1:]), sorted(completes[1:])
    return {
        "claims": count,
        "p50_ms": percentile(claims, 50),
        "p99_ms": percentile(claims, 99),
        "max_ms": claims[-1],
        "complete_p50_ms": percentile(completes, 50) if completes else None,
        "samples_ms": [round(sample, 3) for sample in claims],
    }


# -- 4. drains -------------------------------------------------------------------------------

# Each drain runs a slice of the ready rows, not all of them: the table keeps
# its M ready rows (the claims step over the same index as with a full
# backlog), while a drain lasts seconds instead of minutes and every
# concurrency gets the same amount of work. The rest are held back: still
# READY, but due only in HOLD_UNTIL, which the claim order puts behind the
# slice. A burst worker stops once nothing is due, so it stops after the slice.


def hold_back(store: TaskStore) -> None:
    """Make every READY row wait until HOLD_UNTIL."""
    from offload.states import State

    held = store.connection.ops.adapt_datetimefield_value(HOLD_UNTIL)
    with store.connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET available_at = %s WHERE status = %s", [held, State.READY]
        )
        log(f"held back {cursor.rowcount:,} ready rows for the drains")


def top_up(filler: Filler, ready: int) -> None:
    """Insert held-back READY rows until ``ready`` of them wait, as at the start."""
    from offload.states import State

    missing = ready - counts().get(State.READY, 0)
    if missing > 0:
        filler.add(missing, finished=False, label="top-up", hold=True)


def release(store: TaskStore, count: int) -> tuple[int, int]:
    """Make the ``count`` oldest READY rows due now; their first and last id."""
    from offload.states import State

    with store.connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(id) FROM {TABLE} WHERE status = %s", [State.READY])
        first = cursor.fetchone()
        cursor.execute(
            f"SELECT id FROM {TABLE} WHERE status = %s ORDER BY id LIMIT 1 OFFSET %s",
            [State.READY, count - 1],
        )
        last = cursor.fetchone()
        if last is None or first is None:
            raise BenchError(f"fewer than {count} ready rows to release")
        # The ready rows are a run of ids with none of another status between
        # them: the claims and the drains before took them from the front.
        low, high = int(first[0]), int(last[0])
        cursor.execute(
            f"UPDATE {TABLE} SET available_at = {store.vendor.now} "
            "WHERE status = %s AND id BETWEEN %s AND %s",
            [State.READY, low, high],
        )
        if cursor.rowcount != count:
            raise BenchError(f"released {cursor.rowcount} ready rows, not {count}")
    return low, high


def drain(
    store: TaskStore, filler: Filler, args: argparse.Namespace, item: str, problems: list[str]
) -> dict[str, Any]:
    """A burst worker at ``item`` (PROCESSESxTHREADS) runs a fresh slice of ``args.drain``."""
    from django.db.models import Count, Max, Min

    from bench import procs
    from bench.systems import Concurrency, Offload
    from offload.models import TaskRecord

    concurrency = Concurrency(*map(int, item.split("x")))
    what = f"drain {concurrency.label} of {args.drain:,}"
    top_up(filler, args.ready)
    low, high = release(store, args.drain)
    optimize(store)
    before = counts()
    log(f"{what} ({before.get('READY', 0):,} ready, {before.get('SUCCESSFUL', 0):,} finished)")
    timeout = 60 + args.drain / 5  # a worker this slow is broken, not slow
    begun = time.perf_counter()
    commands = Offload().worker_commands(concurrency, burst=True)
    group = procs.start(commands, ROOT, subprocess_env(), problems)
    try:
        codes = group.wait(timeout)
    except TimeoutError:
        group.stop()
        raise BenchError(f"{what}: the burst worker did not finish in {timeout:.0f}s") from None
    except BaseException:
        group.stop()
        raise
    wall = time.perf_counter() - begun
    group.reap()
    if any(codes):
        problems.append(f"{what}: the worker exited with status {codes}")
    rows = TaskRecord.objects.filter(pk__range=(low, high))
    statuses = {
        row["status"]: row["n"]
        for row in rows.values("status").annotate(n=Count("pk")).order_by("status")
    }
    if statuses != {"SUCCESSFUL": args.drain}:
        problems.append(f"{what}: not every task of the slice is SUCCESSFUL: {statuses}")
    span = rows.aggregate(first=Min("started_at"), last=Max("finished_at"))
    if span["first"] is None or span["last"] is None:
        raise BenchError(f"{what}: no task was started or finished")
    steady = (span["last"] - span["first"]).total_seconds()
    rate = args.drain / steady if steady > 0 else None
    log(f"{what}: {rate or 0:,.0f} tasks/s")
    return {
        "concurrency": concurrency.label,
        "tasks": args.drain,
        "ready_before": before.get("READY", 0),
        "finished_before": before.get("SUCCESSFUL", 0),
        "wall_seconds": wall,
        "steady_seconds": steady,
        "per_second": rate,
        "peak_rss_mb": [round(peak / 2**20, 1) for peak in sorted(group.peak_rss.values())],
    }


# -- the table -----------------------------------------------------------------------------


def format_table(report: dict[str, Any]) -> str:
    git = report["git"]
    commit = f"{git['commit']}{' (dirty)' if git['dirty'] else ''}"
    params = report["parameters"]
    lines = [
        f"offload scale @ {commit}: {report['database']} {report['server_version'] or ''}, "
        f"python {report['python']}, django {report['django']}, {report['cpu_count']} CPUs",
    ]
    if fill := report.get("fill"):
        optimizer = "VACUUM ANALYZE" if report["database"] == "postgres" else "ANALYZE"
        lines.append(
            f"table: {params['finished']:,} finished + {params['ready']:,} ready rows, filled in "
            f"{fill['seconds']:.1f}s ({shown(fill['rows_per_second'], 0)} rows/s), "
            f"{optimizer} {fill['optimize_seconds']:.1f}s"
        )
    for kind, found in report.get("plans", {}).items():
        verdict = "SORTS" if found["sorts"] else "no sort"
        lines += ["", f"claim plan, {kind}, limit {params['claim_limit']}: {verdict}, "
                      f"reads {', '.join(found['indexes']) or 'no index'}"]  # fmt: skip
        lines += [f"  {line}" for line in found["lines"]]
    if claims := report.get("claims"):
        header = f"  {'claim of ' + str(params['claim_limit']):<24} {'claims':>6} {'p50 ms':>8} "
        lines += ["", header + f"{'p99 ms':>8} {'max ms':>8} {'complete_many p50 ms':>21}"]
        for kind, found in claims.items():
            label = kind + (" (none ready)" if CLAIM_KINDS[kind] else "")
            lines.append(
                f"  {label:<24} {found['claims']:>6} {shown(found['p50_ms'], 2):>8} "
                f"{shown(found['p99_ms'], 2):>8} {shown(found['max_ms'], 2):>8} "
                f"{shown(found['complete_p50_ms'], 2):>21}"
            )
    if drains := report.get("drains"):
        title = f"drain of {params['drain']:,} no-ops"
        lines += ["", f"  {title:<24} {'ready':>9} {'finished':>10} {'tasks/s':>8} "
                      f"{'steady s':>9} {'wall s':>7}"]  # fmt: skip
        for run in drains:
            lines.append(
                f"  {run['concurrency']:<24} {run['ready_before']:>9,} "
                f"{run['finished_before']:>10,} {shown(run['per_second'], 0):>8} "
                f"{run['steady_seconds']:>9.1f} {run['wall_seconds']:>7.1f}"
            )
    problems = list(report["problems"])
    if report["error"]:
        problems.insert(0, f"{report['status'].upper()}: {report['error']}")
    lines += ["", *(problems or ["problems: none"])]
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def shown(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
