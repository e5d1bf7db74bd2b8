"""Measure offload: enqueue rate, drain rate and enqueue-to-start latency, per database.

    python -m bench.run [--db sqlite,postgres,mariadb] [--tasks N] [--latency-tasks M]
                        [--latency-rate R] [--repeat K] [--processes P] [--threads T]
                        [--backend-options JSON] [--json PATH] [--allow-missing]

Each database is measured in a child process (``python -m bench.run --one DB``),
because Django's settings, and so the database, are fixed once ``django.setup()``
has run. The child creates a fresh ``offload_bench`` database (or SQLite file),
migrates it, measures, and drops it again. The parent collects what the children
found, prints a table and writes every raw figure to JSON.

Every duration that describes the worker (drain, latency) is computed from the
timestamps offload stores, which come from the database server's clock; only
the enqueue rate and the drain's wall-clock figure are timed by this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import django
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.models import Count, Max, Min
from django.tasks import task_backends

# Imported where they are used, not here: offload.models and bench.tasks need
# django.setup(), which only the child may run, after choosing its database;
# bench.settings reads the environment when first imported, so it must not be
# imported before the child has set it; psycopg and MySQLdb are needed only
# for their own database.

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgres", "mariadb")
DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"

# A child's exit status when its database server does not answer: the parent
# then reports the database as missing, not as failed.
EXIT_UNREACHABLE = 3

# How long the bench waits for the worker. They are generous on purpose: they
# only stop a broken run from hanging, they never end a healthy one.
WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 30.0
LATENCY_FINISH_TIMEOUT = 60.0
POLL_SECONDS = 0.05

# Worker flags passed on when given; otherwise the worker's defaults are measured.
OPTIONAL_WORKER_FLAGS = ("processes", "threads")


class BenchError(Exception):
    """A run that cannot give a trustworthy figure: it is reported, never averaged in."""


class Unreachable(BenchError):
    """The database server did not accept a connection (down, wrong address or credentials)."""


def log(message: str) -> None:
    # Progress goes to stderr so that stdout holds only the table.
    print(f"bench: {message}", file=sys.stderr, flush=True)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of every child: bench settings, and the repo root importable."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)
    env.update(extra)
    return env


# -- the parent: one child per database, then the table and the JSON ------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark offload's enqueue rate, drain rate and enqueue-to-start latency.",
    )
    parser.add_argument(
        "--db", default=",".join(DATABASES),
        help="Comma-separated databases to measure (default: sqlite,postgres,mariadb).",
    )  # fmt: skip
    parser.add_argument(
        "--tasks", type=positive_int, default=2000,
        help="No-op tasks enqueued and then drained, per repeat (default: 2000).",
    )  # fmt: skip
    parser.add_argument(
        "--latency-tasks", type=positive_int, default=100,
        help="Tasks enqueued to a running, idle worker to measure latency (default: 100).",
    )  # fmt: skip
    parser.add_argument(
        "--latency-rate", type=positive_float, default=20.0,
        help="Tasks per second enqueued for the latency measurement (default: 20).",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=positive_int, default=3,
        help="Repeats of every measurement; the table shows medians (default: 3).",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=positive_int, default=None,
        help="Passed to the worker as --processes (default: the worker's, one per CPU).",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=positive_int, default=None,
        help="Passed to the worker as --threads (default: the worker's).",
    )  # fmt: skip
    parser.add_argument(
        "--backend-options",
        type=json_object,
        default={},
        help="JSON merged into the backend's OPTIONS, e.g. '{\"POLL_INTERVAL\": 0.1}' "
        "(default: none, so offload's defaults are measured).",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON,
        help="Where to write the results (default: bench/results/latest.json).",
    )  # fmt: skip
    parser.add_argument(
        "--allow-missing", action="store_true",
        help="Exit 0 even if a database server did not answer (it is still reported).",
    )  # fmt: skip
    # Internal: run one database's measurements in this process, and write them here.
    parser.add_argument("--one", choices=DATABASES, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.databases = [name.strip() for name in args.db.split(",") if name.strip()]
    unknown = sorted(set(args.databases) - set(DATABASES))
    if unknown or not args.databases:
        parser.error(f"--db takes a comma-separated subset of {','.join(DATABASES)}")
    return args


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def worker_flags(args: argparse.Namespace) -> list[str]:
    """The optional worker flags the user gave, e.g. ``["--processes", "2"]``."""
    flags: list[str] = []
    for name in OPTIONAL_WORKER_FLAGS:
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name}", str(value)]
    return flags


def run_all(args: argparse.Namespace) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="offload-bench-"))
    env = subprocess_env(
        OFFLOAD_BENCH_SQLITE_DIR=str(scratch),
        OFFLOAD_BENCH_OPTIONS=json.dumps(args.backend_options),
        OFFLOAD_BENCH_DB="sqlite",
    )
    results: list[dict[str, Any]] = []
    try:
        results.extend(run_child(database, args, env, scratch) for database in args.databases)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "parameters": {
            "tasks": args.tasks,
            "latency_tasks": args.latency_tasks,
            "latency_rate_per_second": args.latency_rate,
            "repeat": args.repeat,
            "worker_flags": worker_flags(args),
            "backend_options": args.backend_options,
            "conn_max_age": os.environ.get("OFFLOAD_BENCH_CONN_MAX_AGE", "0"),
        },
        "databases": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(format_table(report))
    print(f"\nRaw figures: {display_path(args.json)}")

    failed = [r for r in results if r["status"] == "error" or r["problems"]]
    missing = [r for r in results if r["status"] == "unreachable"]
    if missing and not args.allow_missing:
        print("A database was skipped, so the exit status is 1 (--allow-missing makes it 0).")
    if failed or (missing and not args.allow_missing):
        return 1
    return 0


def run_child(
    database: str, args: argparse.Namespace, env: dict[str, str], scratch: Path
) -> dict[str, Any]:
    result_file = scratch / f"{database}.json"
    command = [
        sys.executable, "-m", "bench.run", "--one", database, "--result-file", str(result_file),
        "--tasks", str(args.tasks), "--latency-tasks", str(args.latency_tasks),
        "--latency-rate", str(args.latency_rate), "--repeat", str(args.repeat),
        *worker_flags(args),
    ]  # fmt: skip
    log(f"{database}: starting")
    child = subprocess.Popen(command, cwd=ROOT, env={**env, "OFFLOAD_BENCH_DB": database})
    try:
        code = child.wait()
    except KeyboardInterrupt:
        # Have the child stop its worker and drop its database (after Ctrl-C
        # it is doing so already and ignores this), and let it finish.
        child.send_signal(signal.SIGTERM)
        child.wait()
        raise
    if result_file.exists():
        result: dict[str, Any] = json.loads(result_file.read_text())
    else:
        result = empty_result(database)
        result.update(status="error", error=f"the benchmark process exited with status {code}")
    if code == EXIT_UNREACHABLE:
        result["status"] = "unreachable"
    elif code != 0 and result["status"] == "ok":
        result.update(status="error", error=f"the benchmark process exited with status {code}")
    return result


def git_state() -> dict[str, Any]:
    def git(*command: str) -> str | None:
        done = subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain")
    # A dirty tree means the figures belong to uncommitted code, not to the commit.
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(status)}


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_table(report: dict[str, Any]) -> str:
    params = report["parameters"]
    flags = " ".join(params["worker_flags"]) or "(none)"
    git = report["git"]
    commit = f"{git['commit']}{' (dirty)' if git['dirty'] else ''}"
    lines = [
        f"offload bench @ {commit}: python {report['python']}, django {report['django']}, "
        f"{report['cpu_count']} CPUs, worker flags {flags}",
        f"median of {params['repeat']}: drain of {params['tasks']} no-op tasks; latency of "
        f"{params['latency_tasks']} tasks at {params['latency_rate_per_second']:g}/s",
        "",
    ]
    header = ("database", "enqueue/s", "drain wall/s", "drain steady/s", "latency p50 ms",
              "p95 ms", "max ms")  # fmt: skip
    widths = (9, 10, 13, 15, 15, 7, 7)
    lines.append(
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    lines.append("  ".join("-" * w for w in widths))
    notes: list[str] = []
    for result in report["databases"]:
        name = result["database"]
        if result["status"] == "unreachable":
            lines.append(f"{name.ljust(widths[0])}  skipped: cannot connect")
            notes.append(f"{name}: {result['error']}")
            continue
        median = result.get("median") or {}
        cells = [
            median.get("enqueue_per_second"),
            median.get("drain_wall_per_second"),
            median.get("drain_steady_per_second"),
            median.get("latency_p50_ms"),
            median.get("latency_p95_ms"),
            median.get("latency_max_ms"),
        ]
        texts = [name.ljust(widths[0])] + [
            shown(value).rjust(width) for value, width in zip(cells, widths[1:], strict=True)
        ]
        line = "  ".join(texts)
        if result["status"] == "error":
            line += "  FAILED"
            notes.append(f"{name}: {result['error']}")
        if result["problems"]:
            line += f"  {len(result['problems'])} problem(s)"
            notes.extend(f"{name}: {problem}" for problem in result["problems"])
        lines.append(line)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def empty_result(database: str) -> dict[str, Any]:
    return {
        "database": database,
        "status": "ok",  # ok, unreachable or error
        "error": None,
        "problems": [],  # lost or failed tasks, workers that had to be killed...
        "server_version": None,
        "settings": {},
        "runs": [],
        "median": None,
    }


# -- the child: one database, measured in this process ---------------------------


def run_one(args: argparse.Namespace) -> int:
    """Measure the database ``args.one``; write the result to ``args.result_file``."""
    os.environ["OFFLOAD_BENCH_DB"] = args.one
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    django.setup()
    result = empty_result(args.one)
    code = 0
    try:
        log(f"{args.one}: creating a fresh database")
        result["server_version"] = recreate_database(args.one)
        Bench(args, result).measure()
    except Unreachable as exc:
        log(f"{args.one}: SKIPPED, {exc}")
        result.update(status="unreachable", error=str(exc))
        code = EXIT_UNREACHABLE
    except BenchError as exc:
        log(f"{args.one}: FAILED, {exc}")
        result.update(status="error", error=str(exc))
        code = 1
    except KeyboardInterrupt:
        log(f"{args.one}: interrupted; cleaning up")
        raise
    except Exception as exc:
        # Unexpected (a database error, a bug): the traceback is what to look at.
        traceback.print_exc()
        result.update(status="error", error=f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        if result["status"] != "unreachable":
            drop_database(args.one)
        if args.result_file:
            args.result_file.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return code


def connect_server(database: str) -> Any:
    """A DB-API connection to the server's maintenance database, in autocommit.

    Never the bench database itself: it may not exist yet, and it cannot be
    dropped while connected to.
    """
    conf: dict[str, Any] = settings.DATABASES["default"]
    where = f"{conf['HOST']}:{conf['PORT']}"
    if database == "postgres":
        import psycopg

        try:
            return psycopg.connect(
                host=conf["HOST"], port=conf["PORT"], user=conf["USER"],
                password=conf["PASSWORD"] or None, dbname="postgres", autocommit=True,
                connect_timeout=5,
            )  # fmt: skip
        except psycopg.OperationalError as exc:
            raise Unreachable(f"cannot connect to PostgreSQL at {where}: {one_line(exc)}") from exc
    import MySQLdb  # type: ignore[import-untyped]

    try:
        # No database named: MariaDB needs none to create or drop one.
        server = MySQLdb.connect(
            host=conf["HOST"], port=int(conf["PORT"]), user=conf["USER"],
            password=conf["PASSWORD"], connect_timeout=5,
        )  # fmt: skip
    except MySQLdb.OperationalError as exc:
        raise Unreachable(f"cannot connect to MariaDB at {where}: {one_line(exc)}") from exc
    server.autocommit(True)
    return server


def one_line(exc: BaseException) -> str:
    # psycopg's messages span lines; the table's notes are one line each.
    return " ".join(str(exc).split())


def drop_statement(database: str) -> str:
    from bench import settings as bench_settings

    name = bench_settings.BENCH_DB_NAME
    if database == "postgres":
        # FORCE: a run that was killed may have left a connection open.
        return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    return f"DROP DATABASE IF EXISTS `{name}`"


def recreate_database(database: str) -> str:
    """Drop and create the bench database (or SQLite file); return the server's version."""
    from bench import settings as bench_settings

    if database == "sqlite":
        remove_sqlite_files(bench_settings.SQLITE_PATH)
        return sqlite3.sqlite_version
    name = bench_settings.BENCH_DB_NAME
    server = connect_server(database)
    try:
        cursor = server.cursor()
        cursor.execute(drop_statement(database))
        if database == "postgres":
            cursor.execute(f'CREATE DATABASE "{name}"')
            cursor.execute("SHOW server_version")
        else:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cursor.execute("SELECT VERSION()")
        row = cursor.fetchone()
    finally:
        server.close()
    return str(row[0]) if row else "?"


def drop_database(database: str) -> None:
    from bench import settings as bench_settings

    # This process's own connection would keep the database in use.
    connections.close_all()
    try:
        if database == "sqlite":
            remove_sqlite_files(bench_settings.SQLITE_PATH)
            return
        server = connect_server(database)
        try:
            server.cursor().execute(drop_statement(database))
        finally:
            server.close()
    except Exception as exc:
        # Reported, not raised: the measurements are taken and about to be written.
        log(
            f"{database}: could not drop the bench database {bench_settings.BENCH_DB_NAME!r}: {exc}"
        )


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


class Bench:
    """The measurements on one database, already set up by ``django.setup()``."""

    def __init__(self, args: argparse.Namespace, result: dict[str, Any]) -> None:
        self.args = args
        self.result = result
        self.name: str = args.one
        self.worker_command = [sys.executable, "-m", "django", "offload", "-v", "0", "worker",
                               *worker_flags(args)]  # fmt: skip

    def measure(self) -> None:
        log(f"{self.name}: migrating")
        call_command("migrate", verbosity=0)
        # The options in effect, defaults included, as the backend parsed them
        # (its Options dataclass; anything else is recorded as text).
        config = getattr(task_backends["default"], "config", None)
        if is_dataclass(config) and not isinstance(config, type):
            options: Any = {k: v for k, v in asdict(config).items() if k != "problems"}
        else:
            options = repr(config)
        self.result["settings"] = {
            "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE"),
            "backend_options": options,
            "worker_command": ["python", *self.worker_command[1:]],
        }
        repeats = self.args.repeat
        for number in range(1, repeats + 1):
            step = f"{self.name}: repeat {number}/{repeats}"
            run: dict[str, Any] = {"repeat": number}
            self.result["runs"].append(run)
            log(f"{step}: enqueueing {self.args.tasks} tasks")
            run["enqueue"] = self.enqueue_many(self.args.tasks)
            log(f"{step}: enqueue {run['enqueue']['per_second']:.0f}/s; draining")
            run["drain"] = self.drain(self.args.tasks)
            log(
                f"{step}: drain {run['drain']['wall_per_second']:.0f}/s wall, "
                f"{shown(run['drain']['steady_per_second'])}/s steady; measuring latency "
                f"({self.args.latency_tasks} tasks at {self.args.latency_rate:g}/s)"
            )
            run["latency"] = self.latency(self.args.latency_tasks, self.args.latency_rate)
            log(
                f"{step}: latency p50 {run['latency']['p50_ms']:.0f} ms, "
                f"p95 {run['latency']['p95_ms']:.0f} ms"
            )
        self.result["median"] = medians(self.result["runs"])

    # -- the table -------------------------------------------------------------------

    def empty_table(self) -> None:
        """Start a measurement on an empty table, so no repeat inherits another's rows."""
        # TRUNCATE, not DELETE: on PostgreSQL deleted rows stay as dead tuples
        # that the next claims would scan until autovacuum runs. (SQLite has no
        # TRUNCATE; its unqualified DELETE empties the table just as directly.)
        sql = "DELETE FROM offload_task" if self.name == "sqlite" else "TRUNCATE TABLE offload_task"
        with connection.cursor() as cursor:
            cursor.execute(sql)

    def statuses(self, ids: Sequence[int] | None = None) -> dict[str, int]:
        from offload.models import TaskRecord

        rows = TaskRecord.objects.all()
        if ids is not None:
            rows = rows.filter(pk__in=ids)
        counted = rows.values("status").annotate(n=Count("id")).order_by("status")
        return {row["status"]: row["n"] for row in counted}

    def check_all_successful(self, what: str, expected: int, counts: dict[str, int]) -> int:
        """Record a problem for every task not SUCCESSFUL; return how many there are."""
        successful = counts.get("SUCCESSFUL", 0)
        missing = expected - sum(counts.values())
        bad = expected - successful
        if bad:
            found = [f"{n} {status}" for status, n in counts.items() if status != "SUCCESSFUL"]
            if missing:
                found.append(f"{missing} missing")
            self.result["problems"].append(
                f"{what}: {bad} of {expected} tasks not SUCCESSFUL ({', '.join(found)})"
            )
        return bad

    # -- W1: enqueue -------------------------------------------------------------------

    def enqueue_many(self, count: int) -> dict[str, Any]:
        from bench.tasks import noop

        self.empty_table()
        # Connect first: the enqueue rate should not include opening the connection.
        connection.ensure_connection()
        begun = time.perf_counter()
        for _ in range(count):
            noop.enqueue()  # autocommit: each enqueue is its own committed transaction
        seconds = time.perf_counter() - begun
        return {"tasks": count, "seconds": seconds, "per_second": count / seconds}

    # -- drain --------------------------------------------------------------------------

    def drain(self, count: int) -> dict[str, Any]:
        from offload.models import TaskRecord

        # Generous: a worker slower than 20 tasks/s is broken, not slow.
        timeout = 60 + count / 20
        begun = time.perf_counter()
        worker = self.start_worker("--burst")
        try:
            code = worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop_worker(worker)
            raise BenchError(f"the burst worker did not finish within {timeout:.0f}s") from None
        except BaseException:
            # Ctrl-C: the worker is in a session of its own and did not get it.
            self.stop_worker(worker)
            raise
        wall = time.perf_counter() - begun
        self.reap_group(worker, "drain")
        if code != 0:
            self.result["problems"].append(f"drain: the burst worker exited with status {code}")
        counts = self.statuses()
        self.check_all_successful("drain", count, counts)
        span = TaskRecord.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
        if span["first"] is None or span["last"] is None:
            raise BenchError("drain: no task was started or finished")
        # Database clock: from the first claim to the last outcome, without the
        # worker's start-up and shut-down.
        steady = (span["last"] - span["first"]).total_seconds()
        return {
            "tasks": count,
            "wall_seconds": wall,
            "wall_per_second": count / wall,
            "steady_seconds": steady,
            # None, not infinity, which JSON cannot hold (one task, one clock tick).
            "steady_per_second": count / steady if steady > 0 else None,
            "statuses": counts,
            "worker_exit_code": code,
        }

    # -- W4: latency ----------------------------------------------------------------------

    def latency(self, count: int, rate: float) -> dict[str, Any]:
        from bench.tasks import noop
        from offload.models import TaskRecord

        self.empty_table()
        worker = self.start_worker()
        ids: list[int] = []
        try:
            # Once the warm-up task has run, the worker has started, connected and
            # imported the task; a second later it is asleep in its poll wait,
            # where a quiet production worker spends its time.
            warm_up = int(noop.enqueue().id)
            self.wait_until(lambda: self.finished([warm_up]), WORKER_START_TIMEOUT, worker,
                            "the worker did not run the warm-up task")  # fmt: skip
            time.sleep(1)
            begun = time.perf_counter()
            for index in range(count):
                # A fixed schedule, not a fixed pause: a slow enqueue does not
                # push every later one back.
                delay = begun + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                with transaction.atomic():
                    ids.append(int(noop.enqueue().id))
            self.wait_until(lambda: self.finished(ids), LATENCY_FINISH_TIMEOUT, worker,
                            "the worker did not finish the latency tasks")  # fmt: skip
        finally:
            code = self.stop_worker(worker)
            self.reap_group(worker, "latency")
        if code != 0:
            self.result["problems"].append(f"latency: the worker exited with status {code}")
        counts = self.statuses(ids)
        self.check_all_successful("latency", count, counts)
        rows = TaskRecord.objects.filter(pk__in=ids, started_at__isnull=False)
        samples = sorted(
            (started - enqueued).total_seconds() * 1000
            for enqueued, started in rows.values_list("enqueued_at", "started_at")
            if started is not None
        )
        if not samples:
            raise BenchError("latency: no task was started")
        return {
            "tasks": count,
            "rate_per_second": rate,
            "p50_ms": percentile(samples, 50),
            "p95_ms": percentile(samples, 95),
            "max_ms": samples[-1],
            "samples_ms": [round(sample, 3) for sample in samples],
            "statuses": counts,
            "worker_exit_code": code,
        }

    def finished(self, ids: Sequence[int]) -> bool:
        from offload.models import TaskRecord

        done = TaskRecord.objects.filter(pk__in=ids, status__in=["SUCCESSFUL", "FAILED"])
        return done.count() == len(ids)

    # -- worker processes -----------------------------------------------------------------

    def start_worker(self, *extra: str) -> subprocess.Popen[bytes]:
        # A session of its own, so that a worker which will not stop can be
        # killed together with any processes it started.
        return subprocess.Popen(
            [*self.worker_command, *extra], cwd=ROOT, env=subprocess_env(),
            stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> int:
        """SIGTERM (a graceful stop), then SIGKILL after WORKER_STOP_TIMEOUT."""
        if worker.poll() is not None:
            return worker.returncode
        worker.send_signal(signal.SIGTERM)
        try:
            return worker.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.result["problems"].append(
                f"the worker did not stop within {WORKER_STOP_TIMEOUT:.0f}s of SIGTERM; killed"
            )
            os.killpg(worker.pid, signal.SIGKILL)
            return worker.wait()

    def reap_group(self, worker: subprocess.Popen[bytes], what: str) -> None:
        """Make sure nothing the worker started outlives it; record it if something did.

        A worker that runs task processes must stop them before it exits. Left
        running, they would take tasks from the next measurement.
        """
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT
        while True:
            try:
                os.killpg(worker.pid, 0)  # signal 0: only asks whether the group exists
            except ProcessLookupError:
                return
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        self.result["problems"].append(
            f"{what}: processes started by the worker were still running "
            f"{WORKER_STOP_TIMEOUT:.0f}s after it exited; killed"
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)

    @staticmethod
    def wait_until(
        done: Callable[[], bool], timeout: float, worker: subprocess.Popen[bytes], failure: str
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if worker.poll() is not None:
                raise BenchError(f"{failure}: it exited with status {worker.returncode}")
            if time.monotonic() > deadline:
                raise BenchError(f"{failure} within {timeout:.0f}s")
            time.sleep(POLL_SECONDS)


# -- figures ---------------------------------------------------------------------------


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: a latency some task really had, never an interpolation."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The median over repeats of each figure in the table (None where no repeat has it)."""
    picks = {
        "enqueue_per_second": ("enqueue", "per_second"),
        "drain_wall_per_second": ("drain", "wall_per_second"),
        "drain_steady_per_second": ("drain", "steady_per_second"),
        "latency_p50_ms": ("latency", "p50_ms"),
        "latency_p95_ms": ("latency", "p95_ms"),
        "latency_max_ms": ("latency", "max_ms"),
    }
    found: dict[str, float | None] = {}
    for name, (part, key) in picks.items():
        values = [run[part][key] for run in runs if run[part][key] is not None]
        found[name] = statistics.median(values) if values else None
    return found


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def interrupt_once() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt, once.

    The clean-up that follows (stopping the worker, dropping the database) must
    not be cut short by a second signal: Ctrl-C reaches the parent and the child
    together, and the parent passes a SIGTERM on as well.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_once()
    try:
        return run_one(args) if args.one else run_all(args)
    except KeyboardInterrupt:
        if not args.one:
            log("interrupted; nothing was written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
