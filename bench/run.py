"""Measure offload, django-tasks-db and huey on the same workloads, per database.

    python -m bench.run [--db sqlite,postgres,mariadb] [--conn-max-age 0,60] [--repeat K]
                        [--tasks N] [--peer-tasks N] [--bulk-tasks N] [...] [--json PATH]
                        [--peers huey-sqlite,huey-redis] [--quick]
                        [--allow-missing]   (--help lists every option)

Each database is measured in a child process (``python -m bench.run --one DB``)
per ``CONN_MAX_AGE``, because Django's settings, and so the database, are fixed
once ``django.setup()`` has run. The child creates a fresh ``offload_bench``
database (or SQLite file), migrates it, measures the database's own commit
limits (``bench.db_limits``), runs every workload (``bench.workloads``) on both
Django backends (``bench.systems``), and drops the database again. Then one
child per huey variant (``bench.huey_peer``) measures huey on SQLite and on
Redis, once per run. The parent collects what the children found, prints the
table with offload's ratio to the fastest peer and a PASS/MISS per target
(``bench.report``), writes every raw figure to JSON and draws the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

import django
from django.conf import settings
from django.core.management import call_command

from bench import procs
from bench.huey_peer import run_in_child as run_peer
from bench.report import format_table, limit_medians, medians, plot, verdicts
from bench.server import Unreachable, drop_database, recreate_database
from bench.workloads import BenchError

# Imported where they are used, not here: offload.models, bench.tasks,
# bench.systems' models need django.setup(), which only the child may run,
# after choosing its database; bench.settings reads the environment when first
# imported, so it must not be imported before the child has set it; psycopg and
# MySQLdb are needed only for their own database.

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("sqlite", "postgres", "mariadb")
RESULTS = ROOT / "bench" / "results"
DEFAULT_JSON = RESULTS / "latest.json"
DEFAULT_PLOTS = (RESULTS / "bench.png", ROOT / "docs" / "bench.png")
# --quick: smoke sizes that prove every part works in a couple of minutes per
# database; its figures say nothing, so they go to their own file, unplotted.
QUICK_JSON = RESULTS / "quick.json"
QUICK = {
    "repeat": 1, "tasks": 300, "peer_tasks": 60, "bulk_tasks": 1000, "latency_tasks": 40,
    "latency_rate": 40.0, "idle_seconds": 0.5, "sleep_tasks": 200, "peer_sleep_tasks": 20,
    "async_tasks": 500, "cpu_tasks": 10, "w7_tasks": 400, "limit_tasks": 200,
    "w3_offload": "2x1", "w3_peer": "2", "w3_huey": "2", "conn_max_age": "0",
    "w8_tasks": 200, "w8_keys": 10, "w8_limit": 2, "w9_tasks": 60, "w9_rate": 20,
    "w10_members": 100,
}  # fmt: skip
PEER_VARIANTS = {"huey-sqlite": "sqlite", "huey-redis": "redis"}
# What --only chooses from (bench.workloads.WORKLOADS, and the claim's plans).
SELECTABLE = ("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w10", "plans")

# bench.scale, bench.soak and bench.capacity import these from here.
__all__ = ["Unreachable", "drop_database", "recreate_database"]

# A child's exit status when its database server does not answer: the parent
# then reports the database as missing, not as failed.
EXIT_UNREACHABLE = 3


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


# -- the parent: one child per database and CONN_MAX_AGE, then the table --------


# (option, type, default, help) of every option passed on to the children.
MEASURE_OPTIONS: tuple[tuple[str, Any, Any, str], ...] = (
    ("--repeat", "positive_int", 1,
     "Repeats of every measurement; the table shows medians (3 for steadier figures)."),
    ("--tasks", "positive_int", 2000,
     "No-op tasks per offload drain (W2, W3) and per W1 one-by-one enqueue."),
    ("--peer-tasks", "positive_int", 500,
     "No-op tasks per django-tasks-db drain (W2, W3): it is slower, rates are per second."),
    ("--bulk-tasks", "positive_int", 10000, "Tasks in the bulk enqueue."),
    ("--w3-offload", "concurrencies", "2x4,2x1,1x4,4x1",
     "offload worker PROCESSESxTHREADS tried for W3; the best counts."),
    ("--w3-peer", "concurrencies", "2,4", "django-tasks-db worker processes tried for W3."),
    ("--w3-huey", "concurrencies", "2,4",
     "huey consumer worker processes tried for W3 (besides W2's one thread)."),
    ("--latency-tasks", "positive_int", 200,
     "Tasks enqueued to an idle worker (W4), and paced commits of the database limit."),
    ("--latency-rate", "positive_float", 20.0, "Tasks per second for W4."),
    ("--idle-seconds", "positive_float", 3.0, "How long an idle worker's CPU use is measured."),
    ("--sleep-tasks", "positive_int", 2000, "Tasks sleeping 20 ms for offload (W5)."),
    ("--peer-sleep-tasks", "positive_int", 100, "Tasks sleeping 20 ms for django-tasks-db (W5)."),
    ("--sleep-threads", "positive_int", 10,
     "offload threads (and async slots) for W5: the ideal is this x 50/s."),
    ("--async-slots", "positive_int", 100,
     "Async slots for W5's wide async run (the worker's default --async-concurrency)."),
    ("--async-tasks", "positive_int", 10000,
     "Tasks sleeping 20 ms for offload in W5's wide async run."),
    ("--cpu-tasks", "positive_int", 200, "CPU-bound tasks of about 50 ms (W6), per run."),
    ("--w7-tasks", "positive_int", 4000,
     "Tasks two threads enqueue while offload's default worker drains (W7)."),
    ("--limit-tasks", "positive_int", 2000,
     "INSERT + COMMIT transactions in the database limit's tight loop."),
    ("--w8-tasks", "positive_int", 2000,
     "Tasks of W8, the keyed drain, spread over --w8-keys concurrency keys (offload only)."),
    ("--w8-keys", "positive_int", 20, "Concurrency keys of W8."),
    ("--w8-limit", "positive_int", 2, "The concurrency limit of each W8 key."),
    ("--w9-tasks", "positive_int", 300, "Tasks of W9, on one rate key (offload only)."),
    ("--w9-rate", "positive_int", 50, "W9's rate limit, tasks per second."),
    ("--w10-members", "positive_int", 1000,
     "Members of W10's group, enqueued with a callback as one workflow (offload only)."),
    ("--only", "selection", "all",
     f"Comma-separated workloads to run, of {','.join(SELECTABLE)}; the database's limits "
     "run with w1 or w4, plans is the claim's EXPLAIN on a mixed backlog."),
)  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark offload against django-tasks-db on SQLite, PostgreSQL, MariaDB.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--db", default=",".join(DATABASES),
                        help="Comma-separated databases to measure.")  # fmt: skip
    parser.add_argument("--conn-max-age", default="0,60",
                        help="Comma-separated CONN_MAX_AGE values, each a full run.")  # fmt: skip
    types = {"positive_int": positive_int, "positive_float": positive_float,
             "concurrencies": concurrencies, "selection": selection}  # fmt: skip
    for option, kind, default, text in MEASURE_OPTIONS:
        parser.add_argument(option, type=types[kind], default=default, help=text)
    parser.add_argument(
        "--backend-options", type=json_object, default={},
        help="JSON merged into offload's OPTIONS, e.g. '{\"POLL_INTERVAL\": 0.1}'.",
    )  # fmt: skip
    parser.add_argument(
        "--peers", default=",".join(PEER_VARIANTS),
        help="Comma-separated huey peers to measure once per run, or 'none'.",
    )  # fmt: skip
    parser.add_argument(
        "--redis-url", default=os.environ.get("OFFLOAD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="The Redis of huey-redis (OFFLOAD_BENCH_REDIS_URL); only its own keys are touched.",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="Smoke sizes (one repeat, a few hundred tasks, CONN_MAX_AGE 0), written to "
             f"{QUICK_JSON.relative_to(ROOT)} and not plotted: proves it works, measures nothing.",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help="Where to write the results.")  # fmt: skip
    parser.add_argument("--plans", action="store_true",
                        help="Print every claim plan in full (the JSON has them).")  # fmt: skip
    parser.add_argument("--no-plot", action="store_true",
                        help="Do not draw bench/results/bench.png and docs/bench.png.")  # fmt: skip
    parser.add_argument(
        "--allow-missing", action="store_true",
        help="Exit 0 even if a database server did not answer (it is still reported).",
    )  # fmt: skip
    # Internal: run one database's measurements in this process, and write them here.
    parser.add_argument("--one", choices=DATABASES, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        # Defaults only: a size given on the command line still wins.
        parser.set_defaults(**QUICK, json=QUICK_JSON, no_plot=True)
    args = parser.parse_args(argv)
    args.peer_variants = [] if args.peers.strip() == "none" else [
        name.strip() for name in args.peers.split(",") if name.strip()
    ]  # fmt: skip
    if set(args.peer_variants) - set(PEER_VARIANTS):
        parser.error(f"--peers takes a comma-separated subset of {','.join(PEER_VARIANTS)}, "
                     "or none")  # fmt: skip
    args.databases = [name.strip() for name in args.db.split(",") if name.strip()]
    unknown = sorted(set(args.databases) - set(DATABASES))
    if unknown or not args.databases:
        parser.error(f"--db takes a comma-separated subset of {','.join(DATABASES)}")
    try:
        args.ages = [int(age) for age in args.conn_max_age.split(",") if age.strip()]
    except ValueError:
        parser.error("--conn-max-age takes comma-separated whole seconds, e.g. 0,60")
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


def concurrencies(text: str) -> str:
    """``2x4,1x8`` (processes x threads) or ``2,4`` (processes): checked, kept as text."""
    try:
        for item in text.split(","):
            if not all(int(part) >= 1 for part in item.split("x")) or item.count("x") > 1:
                raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected e.g. 2x4,1x8 or 2,4, not {text!r}") from None
    return text


def selection(text: str) -> str:
    """``all``, or a comma-separated subset of SELECTABLE: checked, kept as text."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    if names == {"all"}:
        return "all"
    unknown = sorted(names - set(SELECTABLE))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected all or a comma-separated subset of {','.join(SELECTABLE)}, not {text!r}"
        )
    return ",".join(name for name in SELECTABLE if name in names)


def selected(text: str) -> frozenset[str]:
    return frozenset(SELECTABLE if text == "all" else text.split(","))


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def measure_flags(args: argparse.Namespace) -> list[str]:
    """The measurement options, to pass on to a child."""
    flags: list[str] = []
    for option, *_ in MEASURE_OPTIONS:
        flags += [option, str(getattr(args, option[2:].replace("-", "_")))]
    return flags


def run_all(args: argparse.Namespace) -> int:
    git = git_state()  # before the run: the code measured, not what changed meanwhile
    scratch = Path(tempfile.mkdtemp(prefix="offload-bench-"))
    env = subprocess_env(
        OFFLOAD_BENCH_SQLITE_DIR=str(scratch),
        OFFLOAD_BENCH_OPTIONS=json.dumps(args.backend_options),
        OFFLOAD_BENCH_DB="sqlite",
    )
    results: list[dict[str, Any]] = []
    peers: dict[str, dict[str, Any]] = {}
    try:
        for database in args.databases:
            for age in args.ages:
                results.append(run_child(database, age, args, env, scratch))
                if results[-1]["status"] == "unreachable":
                    break  # the other CONN_MAX_AGE would not connect either
        for variant in args.peer_variants:
            log(f"{variant}: starting")
            peer = run_peer(
                PEER_VARIANTS[variant], args.redis_url, measure_flags(args), env, scratch
            )
            if peer.get("runs"):
                peer["median"] = medians(peer["runs"], peer["name"])
            if peer["status"] == "unreachable":
                log(f"{variant}: SKIPPED, {peer['error']}")
            peers[peer["name"]] = peer
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    peer_medians = {name: peer["median"] for name, peer in peers.items() if peer.get("median")}
    for result in results:
        if result.get("median"):
            result["verdicts"] = verdicts(result, peer_medians, selected(args.only))
    report = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git,
        "python": platform.python_version(),
        "django": django.get_version(),
        "peer_version": version("django-tasks-db"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "parameters": {
            **{
                option[2:].replace("-", "_"): getattr(args, option[2:].replace("-", "_"))
                for option, *_ in MEASURE_OPTIONS
            },
            "conn_max_age": args.ages,
            "backend_options": args.backend_options,
        },
        "databases": results,
        "peers": peers,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(format_table(report, full_plans=args.plans))
    print(f"\nRaw figures: {display_path(args.json)}")
    if not args.no_plot and args.only == "all":  # a partial run does not redraw the plot
        plot(report, DEFAULT_PLOTS)
        print(f"Plot: {', '.join(display_path(path) for path in DEFAULT_PLOTS)}")

    everything = [*results, *peers.values()]
    failed = [r for r in everything if r["status"] == "error" or r["problems"]]
    missing = [r for r in everything if r["status"] == "unreachable"]
    if missing and not args.allow_missing:
        print("A database was skipped, so the exit status is 1 (--allow-missing makes it 0).")
    if failed or (missing and not args.allow_missing):
        return 1
    return 0


def run_child(
    database: str, age: int, args: argparse.Namespace, env: dict[str, str], scratch: Path
) -> dict[str, Any]:
    result_file = scratch / f"{database}-{age}.json"
    command = [sys.executable, "-m", "bench.run", "--one", database,
               "--result-file", str(result_file), *measure_flags(args)]  # fmt: skip
    log(f"{database}, CONN_MAX_AGE={age}: starting")
    child_env = {**env, "OFFLOAD_BENCH_DB": database, "OFFLOAD_BENCH_CONN_MAX_AGE": str(age)}
    code = procs.run_to_end(command, ROOT, child_env)
    if result_file.exists():
        result: dict[str, Any] = json.loads(result_file.read_text())
    else:
        result = empty_result(database, age)
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


def empty_result(database: str, conn_max_age: int | None) -> dict[str, Any]:
    return {
        "database": database,
        "conn_max_age": conn_max_age,
        "status": "ok",  # ok, unreachable or error
        "error": None,
        "problems": [],  # lost or failed tasks, workers that had to be killed...
        "server_version": None,
        "settings": {},
        "runs": [],
        "median": None,
        "limits": None,  # the database's own commit limits, medians (bench.db_limits)
        "plans": None,  # the claim's plans on a mixed backlog (bench.plans)
    }


# -- the child: one database, measured in this process ---------------------------


def run_one(args: argparse.Namespace) -> int:
    """Measure the database ``args.one``; write the result to ``args.result_file``."""
    os.environ["OFFLOAD_BENCH_DB"] = args.one
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    django.setup()
    age = settings.DATABASES["default"].get("CONN_MAX_AGE")
    result = empty_result(args.one, age)
    name = f"{args.one}, CONN_MAX_AGE={age}"
    code = 0
    try:
        log(f"{name}: creating a fresh database")
        result["server_version"] = recreate_database(args.one)
        measure(args, result, name)
    except Unreachable as exc:
        log(f"{name}: SKIPPED, {exc}")
        result.update(status="unreachable", error=str(exc))
        code = EXIT_UNREACHABLE
    except BenchError as exc:
        log(f"{name}: FAILED, {exc}")
        result.update(status="error", error=str(exc))
        code = 1
    except KeyboardInterrupt:
        log(f"{name}: interrupted; cleaning up")
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


def measure(args: argparse.Namespace, result: dict[str, Any], name: str) -> None:
    from bench import db_limits
    from bench.plans import backlog_plans
    from bench.systems import SYSTEMS, Concurrency
    from bench.workloads import Context, calibrate_cpu_rounds
    from bench.workloads import measure as measure_system

    log(f"{name}: migrating")
    call_command("migrate", verbosity=0)
    ctx = Context(
        root=ROOT, env=subprocess_env(), tasks=args.tasks, peer_tasks=args.peer_tasks,
        bulk_tasks=args.bulk_tasks,
        w3_offload=[Concurrency(*map(int, item.split("x"))) for item in args.w3_offload.split(",")],
        w3_peer=[Concurrency(int(item)) for item in args.w3_peer.split(",")],
        latency_tasks=args.latency_tasks, latency_rate=args.latency_rate,
        idle_seconds=args.idle_seconds, sleep_tasks=args.sleep_tasks,
        peer_sleep_tasks=args.peer_sleep_tasks, sleep_threads=args.sleep_threads,
        async_slots=args.async_slots, async_tasks=args.async_tasks,
        cpu_tasks=args.cpu_tasks, w7_tasks=args.w7_tasks, w8_tasks=args.w8_tasks,
        w8_keys=args.w8_keys, w8_limit=args.w8_limit, w9_tasks=args.w9_tasks,
        w9_rate=args.w9_rate, w10_members=args.w10_members,
        selected=selected(args.only) - {"plans"}, problems=result["problems"],
        stamp_dir=Path(tempfile.mkdtemp(prefix="offload-bench-stamps-")),
    )  # fmt: skip
    ctx.cpu_rounds = calibrate_cpu_rounds()
    result["settings"] = {
        "conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE"),
        "offload_options": settings.TASKS["default"]["OPTIONS"],
        "cpu_task_rounds": ctx.cpu_rounds,
    }
    if "plans" in selected(args.only):
        log(f"{name}: the claim's plans on a mixed backlog")
        result["plans"] = backlog_plans(args.tasks)
        SYSTEMS[0].empty()
    try:
        for number in range(1, args.repeat + 1):
            run: dict[str, Any] = {"repeat": number}
            result["runs"].append(run)
            if {"w1", "w4"} & ctx.selected:
                log(f"{name}: repeat {number}/{args.repeat}: the database's own commit limits")
                run["limits"] = db_limits.measure(args.latency_tasks, args.latency_rate,
                                                  args.limit_tasks)  # fmt: skip
            for system in SYSTEMS:
                log(f"{name}: repeat {number}/{args.repeat}: {system.label}")
                run[system.name] = measure_system(ctx, system, lambda text: log(f"{name}: {text}"))
    finally:
        shutil.rmtree(ctx.stamp_dir, ignore_errors=True)
    result["median"] = {system.name: medians(result["runs"], system.name) for system in SYSTEMS}
    if result.get("plans"):
        # Not a figure of a repeat: the plans are read once per database.
        result["median"]["offload"]["plan_sorts"] = len(result["plans"]["sorting"])
    result["limits"] = limit_medians(result["runs"])


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
