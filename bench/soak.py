"""A soak run: a steady enqueue rate for a long time with retention on.

    python -m bench.soak --db postgres [--minutes 30] [--rate 50] [--retain 300]

It answers whether offload can run for months: with the pruner deleting what
is past ``RETAIN_SUCCESSFUL``, the task table's row count and size must level
off, and the claim must not slow down as dead rows come and go (PostgreSQL's
bloat, SQLite's free pages). A fresh ``offload_bench`` database (see
``bench/settings.py``) gets one real worker at its defaults and a thread in this
process that enqueues ``--rate`` no-op tasks a second, one transaction each.
Every ``--sample-seconds`` it records:

* rows in ``offload_task`` and the table's size on disk (with its indexes);
* the claim statement's p50 and p99: ``--claim-samples`` claims of up to 10
  tasks timed here, each in a transaction rolled back, so nothing is taken
  from the worker;
* the wait (``started_at - enqueued_at``) p50 and p99 of the window's tasks.

Before the steady stream and after it, a drain of ``--drain-tasks`` no-op
tasks enqueued at once gives the worker's drain rate (first start to last
finish, on the database's clock). The claim's p50/p99 over the last three
windows and the final drain rate are compared with the first ones: the run
passes if each is within 10% and the peaks of the rows and of the size in the
last third of the run are within 10% of those of the middle third. The figures
go to stdout as a table and to ``bench/results/soak-<db>.json``.

Not part of CI (it is long on purpose); quoted in the README and
docs/operations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.10
POOLED = 3  # windows pooled at the start and at the end for the claim's percentiles


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "mariadb"], default="sqlite")
    parser.add_argument("--minutes", type=float, default=30.0, help="Length of the steady stream.")
    parser.add_argument("--rate", type=float, default=50.0, help="Tasks enqueued per second.")
    parser.add_argument(
        "--retain", type=int, default=300, help="RETAIN_SUCCESSFUL in seconds (at least 60)."
    )
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--claim-samples", type=int, default=100)
    parser.add_argument("--drain-tasks", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the figures.")
    parser.add_argument(
        "--report", type=Path, default=None, metavar="JSON",
        help="Print the table and verdict of a saved run, and run nothing.",
    )  # fmt: skip
    return parser.parse_args(argv)


def setup(args: argparse.Namespace) -> None:
    os.environ["OFFLOAD_BENCH_DB"] = args.db
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["OFFLOAD_BENCH_OPTIONS"] = json.dumps({"RETAIN_SUCCESSFUL": args.retain})
    # Its own database: scripts/bench drops and creates offload_bench at will.
    os.environ["OFFLOAD_BENCH_DB_NAME"] = f"offload_soak_{args.db}"
    import django

    django.setup()


class Enqueuer(threading.Thread):
    """Enqueues ``rate`` no-op tasks a second, one transaction each, on a fixed beat."""

    def __init__(self, rate: float) -> None:
        super().__init__(name="soak-enqueuer", daemon=True)
        self.rate = rate
        self.sent = 0
        self.late = 0.0  # the most the beat fell behind, in seconds
        self.stop = threading.Event()

    def run(self) -> None:
        from django.db import connections

        from bench.tasks import noop

        step = 1 / self.rate
        due = time.monotonic()
        try:
            while not self.stop.is_set():
                noop.enqueue()
                self.sent += 1
                due += step
                behind = time.monotonic() - due
                self.late = max(self.late, behind)
                if behind < 0:
                    self.stop.wait(-behind)
        finally:
            connections.close_all()


def table_size(db: str) -> int:
    """Bytes the task table and its indexes take (for SQLite: the whole file's pages)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if db == "postgres":
            cursor.execute("SELECT pg_total_relation_size('offload_task')")
            return int(cursor.fetchone()[0])
        if db == "mariadb":
            cursor.execute(
                "SELECT data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = 'offload_task'"
            )
            return int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_count")
        pages = int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_size")
        return pages * int(cursor.fetchone()[0])


class _RolledBack(Exception):
    pass


def claim_times(samples: int) -> list[float]:
    """Milliseconds of ``samples`` claims of up to 10 tasks, each rolled back."""
    from django.db import transaction

    from offload.store import TaskStore

    store = TaskStore("default")
    times = []
    for _ in range(samples):
        try:
            with transaction.atomic():
                began = time.perf_counter()
                store.claim("soak-probe", limit=10, lease_seconds=60)
                times.append((time.perf_counter() - began) * 1000)
                raise _RolledBack
        except _RolledBack:
            pass
        time.sleep(0.02)
    return times


def waits_since(since: Any) -> list[float]:
    """Wait (ms) of the no-op tasks enqueued since ``since`` that have started."""
    from offload.models import TaskRecord

    rows = TaskRecord.objects.filter(enqueued_at__gte=since, started_at__isnull=False)
    return sorted(
        (started - enqueued).total_seconds() * 1000
        for enqueued, started in rows.values_list("enqueued_at", "started_at")
    )


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drain(count: int, timeout: float = 600.0) -> float:
    """Enqueue ``count`` no-ops at once; return the worker's drain rate (tasks/s)."""
    from django.db.models import Max, Min

    import offload
    from bench.tasks import noop
    from offload.models import TaskRecord

    results = offload.enqueue_many(noop, [((), {})] * count)
    ids = [result.id for result in results]
    deadline = time.monotonic() + timeout
    rows = TaskRecord.objects.filter(pk__in=ids)
    while rows.filter(finished_at__isnull=True).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the drain of {count} tasks did not end in {timeout:.0f} s")
        time.sleep(0.2)
    span = rows.aggregate(first=Min("started_at"), last=Max("finished_at"))
    return count / max((span["last"] - span["first"]).total_seconds(), 1e-6)


def sample(args: argparse.Namespace, since: Any, began: float) -> dict[str, Any]:
    from offload.models import TaskRecord

    claims = claim_times(args.claim_samples)
    waits = waits_since(since)
    return {
        "minute": round((time.monotonic() - began) / 60, 2),
        "rows": TaskRecord.objects.count(),
        "bytes": table_size(args.db),
        "claim_p50_ms": percentile(claims, 0.5),
        "claim_p99_ms": percentile(claims, 0.99),
        "wait_p50_ms": percentile(waits, 0.5),
        "wait_p99_ms": percentile(waits, 0.99),
        "waits": len(waits),
        "claim_ms": [round(value, 3) for value in claims],
    }


def verdict(result: dict[str, Any]) -> dict[str, bool]:
    """Whether each figure at the end stayed within 10% of the start.

    The claim's percentiles pool the first and the last ``POOLED`` windows:
    one window's p99 is a handful of samples, which one busy moment of a
    shared machine moves by more than 10%.
    """
    samples = result["samples"]
    pooled = min(POOLED, max(len(samples) // 3, 1))
    start = [ms for window in samples[:pooled] for ms in window["claim_ms"]]
    end = [ms for window in samples[-pooled:] for ms in window["claim_ms"]]
    # The pruner works in passes a minute apart, so the rows rise and fall
    # between them: levelled off means the peaks of the last third are no
    # higher than those of the middle one.
    third = len(samples) // 3
    middle, end_third = samples[third : 2 * third], samples[2 * third :]

    def peak_holds(name: str) -> bool:
        if not middle or not end_third:
            return False
        before = max(window[name] for window in middle)
        return max(window[name] for window in end_third) <= before * (1 + TOLERANCE)

    def within(q: float) -> bool:
        before, after = percentile(start, q), percentile(end, q)
        # Below a tenth of a millisecond, 10% is under the timer's noise.
        return (
            before is not None
            and after is not None
            and after <= max(before * (1 + TOLERANCE), before + 0.1)
        )

    result["claim_start_end_ms"] = {
        "p50": [percentile(start, 0.5), percentile(end, 0.5)],
        "p99": [percentile(start, 0.99), percentile(end, 0.99)],
    }
    return {
        "claim p50": within(0.5),
        "claim p99": within(0.99),
        "drain rate": result["drain_after"] >= result["drain_before"] * (1 - TOLERANCE),
        "rows level off": peak_holds("rows"),
        "size levels off": peak_holds("bytes"),
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"soak: {result['db']}, {result['rate']}/s for {result['minutes']} min, "
          f"RETAIN_SUCCESSFUL={result['retain']} s")  # fmt: skip
    print(f"{'min':>6} {'rows':>8} {'MB':>8} {'claim p50':>10} {'claim p99':>10} "
          f"{'wait p50':>9} {'wait p99':>9}")  # fmt: skip

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for s in result["samples"]:
        cells = [f"{s['minute']:>6}", f"{s['rows']:>8}", f"{s['bytes'] / 1e6:>8.1f}"]
        cells += [f"{ms(s[name]):>10}" for name in ("claim_p50_ms", "claim_p99_ms")]
        cells += [f"{ms(s[name]):>9}" for name in ("wait_p50_ms", "wait_p99_ms")]
        print(" ".join(cells))
    print(
        f"drain before: {result['drain_before']:.0f}/s, after: {result['drain_after']:.0f}/s; "
        f"enqueued {result['enqueued']}, the beat fell behind by at most {result['late_s']:.2f} s"
    )
    for q, (before, after) in result["claim_start_end_ms"].items():
        print(f"claim {q}: {before:.2f} ms in the first windows, {after:.2f} ms in the last")
    for name, ok in result["verdict"].items():
        print(f"  {name:<16} {'PASS' if ok else 'MISS'}")


def soak(args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection

    from bench import procs
    from bench.run import log, subprocess_env
    from offload.store.base import database_now

    call_command("migrate", verbosity=0)
    problems: list[str] = []
    env = subprocess_env()  # with this process's OFFLOAD_BENCH_* variables
    worker = procs.start(
        [[sys.executable, "-m", "django", "offload", "-v", "0", "worker"]], ROOT, env, problems
    )
    result: dict[str, Any] = {"db": args.db, "rate": args.rate, "minutes": args.minutes,
                              "retain": args.retain, "samples": []}  # fmt: skip
    try:
        time.sleep(3)  # the worker's start-up
        result["drain_before"] = drain(args.drain_tasks)
        log(f"drain before: {result['drain_before']:.0f}/s")
        enqueuer = Enqueuer(args.rate)
        began = time.monotonic()
        enqueuer.start()
        end = began + args.minutes * 60
        while time.monotonic() < end:
            since = database_now(connection)
            time.sleep(min(args.sample_seconds, max(end - time.monotonic(), 0)))
            result["samples"].append(sample(args, since, began))
            log(json.dumps(result["samples"][-1]))
        enqueuer.stop.set()
        enqueuer.join()
        result["enqueued"], result["late_s"] = enqueuer.sent, enqueuer.late
        time.sleep(5)
        result["drain_after"] = drain(args.drain_tasks)
    finally:
        worker.stop()
    result["problems"] = problems
    result["verdict"] = verdict(result)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        saved["verdict"] = verdict(saved)
        print_table(saved)
        return 0 if all(saved["verdict"].values()) else 1
    setup(args)
    from bench.run import drop_database, recreate_database

    recreate_database(args.db)
    try:
        result = soak(args)
    finally:
        drop_database(args.db)
    out = args.out or ROOT / "bench" / "results" / f"soak-{args.db}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_table(result)
    return 0 if all(result["verdict"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
