"""The capacity model: what one task costs the PostgreSQL server, and the limit
that implies.

    python -m bench.capacity [--tasks 4000] [--batches 1,5,20,100] [--processes 1,2,4]
                             [--pin-database CPU]

Runs against a private PostgreSQL cluster (``bench/private_postgres.py``), so
the server's counters hold only this run's work. For each stage it reads the
server's CPU time (every server process, exited backends included) and the
WAL written (``pg_current_wal_insert_lsn``) before and after:

* **enqueue**: ``--tasks`` no-op tasks, one ``enqueue()`` (one transaction)
  each, and the same count through ``enqueue_many``;
* **drain**: one worker process (``--threads`` threads, ``--burst``) runs them,
  at each claim batch size of ``--batches`` (``CLAIM_BATCH_SIZE``): the claim,
  the outcome writes and the lease work together.

Per task: server CPU microseconds and WAL bytes for each stage. From them,
the tasks per second one database core carries (1 / CPU per task, enqueue and
drain together) is the model's prediction; it is checked against drains with
each of ``--processes`` worker processes, reporting the drain rate and the
server's CPU use during it. With ``--pin-database 0`` the server runs on CPU 0
and the workers on the others (``taskset``), so a drain that saturates the
database's core shows the limit directly.

Figures go to stdout as tables and to ``bench/results/capacity.json``;
docs/capacity.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--batches", default="1,5,20,100", help="CLAIM_BATCH_SIZE values.")
    parser.add_argument("--processes", default="1,2,4", help="Worker processes to check with.")
    parser.add_argument("--threads", type=int, default=4, help="Threads per worker process.")
    parser.add_argument(
        "--pin-database", metavar="CPU", default=None,
        help="Run the server on this CPU and the workers on the others.",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "capacity.json")
    return parser.parse_args(argv)


class Meter:
    """Server CPU and WAL bytes between ``start()`` and ``stop()``."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def _wal(self) -> int:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')")
            return int(cursor.fetchone()[0])

    def start(self) -> None:
        self.began = (self.cluster.cpu_seconds(), self._wal(), time.monotonic())

    def stop(self, tasks: int) -> dict[str, float]:
        cpu, wal, wall = self.cluster.cpu_seconds(), self._wal(), time.monotonic()
        used = cpu - self.began[0]
        seconds = wall - self.began[2]
        return {
            "cpu_us_per_task": used / tasks * 1e6,
            "wal_bytes_per_task": (wal - self.began[1]) / tasks,
            "seconds": seconds,
            "server_cpu_share": used / seconds,
        }


def worker_command(args: argparse.Namespace, processes: int) -> list[str]:
    command = [sys.executable, "-m", "django", "offload", "-v", "0", "worker", "--burst",
               "--processes", str(processes), "--threads", str(args.threads)]  # fmt: skip
    if args.pin_database is not None:
        others = sorted(set(range(os.cpu_count() or 1)) - {int(args.pin_database)})
        command = ["taskset", "-c", ",".join(map(str, others)) or "0", *command]
    return command


def drain(args: argparse.Namespace, meter: Meter, processes: int, batch: int) -> dict[str, float]:
    """Run every READY task with a burst worker; the server's cost and the drain rate."""
    import subprocess

    from django.db.models import Max, Min

    from bench.run import subprocess_env
    from offload.models import TaskRecord

    env = subprocess_env(OFFLOAD_BENCH_OPTIONS=json.dumps({"CLAIM_BATCH_SIZE": batch}))
    first_id = TaskRecord.objects.aggregate(Min("id"))["id__min"]
    meter.start()
    subprocess.run(worker_command(args, processes), cwd=ROOT, env=env, check=True, timeout=900)
    figures = meter.stop(args.tasks)
    done = TaskRecord.objects.filter(id__gte=first_id)
    assert not done.exclude(status="SUCCESSFUL").exists(), "a task did not succeed"
    span = done.aggregate(first=Min("started_at"), last=Max("finished_at"))
    ran = max((span["last"] - span["first"]).total_seconds(), 1e-6)
    figures["rate"] = args.tasks / ran
    # Of the time the tasks ran, not of the worker's start-up and exit: the
    # server's work is nearly all inside it.
    figures["server_cpu_share"] = figures["cpu_us_per_task"] * args.tasks / 1e6 / ran
    done.delete()
    return figures


def enqueue_one_by_one(args: argparse.Namespace, meter: Meter) -> dict[str, float]:
    from bench.tasks import noop

    meter.start()
    for _ in range(args.tasks):
        noop.enqueue()
    return meter.stop(args.tasks)


def enqueue_bulk(args: argparse.Namespace, meter: Meter) -> dict[str, float]:
    import offload
    from bench.tasks import noop

    meter.start()
    offload.enqueue_many(noop, [((), {})] * args.tasks)
    return meter.stop(args.tasks)


def measure(args: argparse.Namespace, cluster: Any) -> dict[str, Any]:
    from django.core.management import call_command

    from bench.run import log

    call_command("migrate", verbosity=0)
    meter = Meter(cluster)
    result: dict[str, Any] = {
        "tasks": args.tasks, "threads": args.threads, "pinned": args.pin_database,
        "batches": {}, "processes": {},
    }  # fmt: skip
    enqueue_bulk(args, meter)  # warm-up: caches, the first autovacuum
    drain(args, meter, 1, 20)
    result["enqueue"] = enqueue_one_by_one(args, meter)
    log(f"enqueue one by one: {result['enqueue']}")
    first_drain = drain(args, meter, 1, 20)
    result["batches"]["20 (after one-by-one)"] = first_drain
    result["enqueue_many"] = enqueue_bulk(args, meter)
    log(f"enqueue_many: {result['enqueue_many']}")
    drain(args, meter, 1, 20)
    for batch in [int(b) for b in args.batches.split(",")]:
        enqueue_bulk(args, meter)
        result["batches"][str(batch)] = drain(args, meter, 1, batch)
        log(f"drain, batch {batch}: {result['batches'][str(batch)]}")
    for processes in [int(p) for p in args.processes.split(",")]:
        enqueue_bulk(args, meter)
        result["processes"][str(processes)] = drain(args, meter, processes, 20)
        log(f"drain, {processes} processes: {result['processes'][str(processes)]}")
    per_task = result["enqueue"]["cpu_us_per_task"] + result["batches"]["20"]["cpu_us_per_task"]
    result["model"] = {
        "server_cpu_us_per_task": per_task,
        "tasks_per_second_per_core": 1e6 / per_task,
        "wal_bytes_per_task": result["enqueue"]["wal_bytes_per_task"]
        + result["batches"]["20"]["wal_bytes_per_task"],
    }
    return result


def print_tables(result: dict[str, Any]) -> None:
    print(f"Server cost per task ({result['tasks']} no-op tasks, a private PostgreSQL"
          f"{', pinned to CPU ' + result['pinned'] if result['pinned'] else ''})")  # fmt: skip
    print(f"{'stage':<30} {'CPU us':>8} {'WAL bytes':>10} {'rate /s':>9} {'server CPU':>10}")
    rows = [("enqueue, one by one", result["enqueue"]),
            ("enqueue_many", result["enqueue_many"])]  # fmt: skip
    rows += [(f"drain, claim batch {b}", f) for b, f in result["batches"].items()]
    rows += [(f"drain, {p} process(es) x {result['threads']}", f)
             for p, f in result["processes"].items()]  # fmt: skip
    for name, f in rows:
        rate = f.get("rate", result["tasks"] / f["seconds"])
        print(f"{name:<30} {f['cpu_us_per_task']:>8.0f} {f['wal_bytes_per_task']:>10.0f} "
              f"{rate:>9.0f} {f['server_cpu_share']:>9.0%}")  # fmt: skip
    model = result["model"]
    print(f"model: {model['server_cpu_us_per_task']:.0f} us of server CPU and "
          f"{model['wal_bytes_per_task']:.0f} WAL bytes per task (enqueue + drain, batch 20): "
          f"{model['tasks_per_second_per_core']:.0f} tasks/s per database core")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.private_postgres import cluster

    with cluster(args.pin_database) as server:
        os.environ.update(OFFLOAD_BENCH_DB="postgres", OFFLOAD_PG_PORT=str(server.port),
                          OFFLOAD_PG_HOST="127.0.0.1", OFFLOAD_PG_USER="postgres",
                          DJANGO_SETTINGS_MODULE="bench.settings")  # fmt: skip
        import django

        django.setup()
        from bench.run import drop_database, recreate_database

        recreate_database("postgres")
        try:
            result = measure(args, server)
        finally:
            drop_database("postgres")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
