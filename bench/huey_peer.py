"""huey 3.x as a peer: the same task bodies and workloads as offload's, on SQLite and Redis.

    python -m bench.huey_peer --variant sqlite|redis --result-file PATH [sizes]

``bench.run`` runs this once per variant, in a child process whose
environment names the huey instance (``bench.huey_app``): ``sqlite:PATH`` or
``redis:URL``. It measures, ``--repeat`` times:

* W1: ``append_line(path, n)`` called N times, each its own enqueue (a
  committed ``INSERT`` in autocommit on SQLite, an ``LPUSH`` on Redis);
* W2: N queued tasks drained by ``huey_consumer -w 1 -k thread`` (its
  default); W3 the same at each of ``--w3-huey`` worker processes
  (``-k process``), the best counting;
* W4: a consumer at its defaults runs a warm-up task, rests a second, is
  measured idle, then gets ``--latency-tasks`` tasks at ``--latency-rate``,
  each stamped on the caller's clock before the enqueue (``bench.caller_clock``);
* W5: 20 ms sleeps on ``--sleep-threads`` worker threads.

huey stores no start or finish time, so drains are read from the stamps the
task bodies append: tasks started per second from the first start to the
last (for the sleeps, which stamp when they end, from the first end less
20 ms to the last end). The consumer runs with ``--quiet``: like offload's
``-v 0``, no log line per task.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import procs
from bench.caller_clock import paced, read_stamps, start_rate, summary, waits_ms

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
SLEEP_MS = 20
# As bench.run's: the parent then reports the peer as missing, not as failed.
EXIT_UNREACHABLE = 3
VARIANTS = ("sqlite", "redis")


class PeerError(procs.BenchError):
    """A run that cannot give a trustworthy figure."""


def log(message: str) -> None:
    print(f"bench: huey: {message}", file=sys.stderr, flush=True)


def consumer(workers: int | None = None, kind: str | None = None) -> list[str]:
    """The consumer command: huey's defaults unless ``workers``/``kind`` say otherwise."""
    command = [sys.executable, "-m", "huey.bin.huey_consumer", "bench.huey_app.huey", "--quiet"]
    if workers is not None:
        command += ["--workers", str(workers)]
    if kind is not None:
        command += ["--worker-type", kind]
    return command


class Peer:
    """One variant's measurements; ``problems`` collects what makes a figure suspect."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        from bench import huey_app

        self.app = huey_app
        self.args = args
        self.scratch = scratch
        self.problems: list[str] = []
        self.files = 0

    def stamp_file(self, what: str) -> Path:
        self.files += 1
        path = self.scratch / f"huey-{what}-{self.files}.stamps"
        path.unlink(missing_ok=True)
        return path

    def start(self, command: list[str]) -> procs.Group:
        return procs.start([command], ROOT, dict(os.environ), self.problems)

    def wait_for(self, path: Path, count: int, group: procs.Group, what: str) -> None:
        """Until ``path`` holds ``count`` stamps, sampling the consumer's memory."""
        group.wait_until(
            lambda: len(read_stamps(path)) >= count,
            START_TIMEOUT + count / 50,
            f"{what}: {count} tasks ran",
            sample=True,
        )

    def enqueue_one_by_one(self) -> dict[str, Any]:
        self.app.huey.flush()
        path, count = str(self.stamp_file("w1")), self.args.tasks
        begun = time.perf_counter()
        for index in range(count):
            self.app.append_line(path, index)
        seconds = time.perf_counter() - begun
        self.app.huey.flush()
        return {"tasks": count, "seconds": seconds, "per_second": count / seconds}

    def drain(self, workers: int, kind: str, *, sleep: bool = False) -> dict[str, Any]:
        self.app.huey.flush()
        path = self.stamp_file("drain")
        count = self.args.sleep_tasks if sleep else self.args.tasks
        for index in range(count):
            if sleep:
                self.app.sleep_ms(str(path), index, SLEEP_MS)
            else:
                self.app.append_line(str(path), index)
        label = f"{workers}x{kind}"
        group = self.start(consumer(workers, kind))
        try:
            self.wait_for(path, count, group, f"drain {label}")
        finally:
            group.stop()
        stamps = read_stamps(path)
        if sleep:
            # Stamped at the end: the first task began SLEEP_MS before its stamp.
            span = max(stamps.values()) - min(stamps.values()) + SLEEP_MS / 1000
            rate: float | None = len(stamps) / span
        else:
            rate = start_rate(stamps)
        peaks = sorted(group.peak_rss.values())
        return {"tasks": count, "concurrency": label, "per_second": rate,
                "peak_rss_mb": [round(peak / 2**20, 1) for peak in peaks]}  # fmt: skip

    def best_drain(self, single: dict[str, Any]) -> dict[str, Any]:
        """W3: each of ``--w3-huey`` worker processes, and W2's one thread; the best."""
        tried = [single, *(self.drain(workers, "process") for workers in self.args.w3_huey)]
        best = max(tried, key=lambda run: run["per_second"] or 0)
        return {**best, "tried": {run["concurrency"]: run["per_second"] for run in tried}}

    def idle_consumer(self) -> dict[str, Any]:
        self.app.huey.flush()
        path = self.stamp_file("w4")
        group = self.start(consumer())
        sent: dict[int, float] = {}
        try:
            self.app.append_line(str(path), -1)
            self.wait_for(path, 1, group, "warm-up")
            time.sleep(1)
            cpu_before, begun = group.cpu_seconds(), time.perf_counter()
            time.sleep(self.args.idle_seconds)
            idle_pct = 100 * (group.cpu_seconds() - cpu_before) / (time.perf_counter() - begun)
            for index in paced(self.args.latency_tasks, self.args.latency_rate):
                sent[index] = time.monotonic()
                self.app.append_line(str(path), index)
            self.wait_for(path, len(sent) + 1, group, "latency")
        finally:
            group.stop()
        caller = waits_ms(sent, read_stamps(path))
        return {
            "tasks": len(sent),
            "rate_per_second": self.args.latency_rate,
            "caller": {**summary(caller), "samples_ms": [round(wait, 3) for wait in caller]},
            "idle_cpu_pct": idle_pct,
        }

    def measure(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"w1": self.enqueue_one_by_one()}
        raw["w2"] = self.drain(1, "thread")
        raw["w3"] = self.best_drain(raw["w2"])
        log(f"enqueue {raw['w1']['per_second']:.0f}/s, drain {raw['w2']['per_second'] or 0:.0f}/s"
            f" (1x1), {raw['w3']['per_second'] or 0:.0f}/s (best); idle consumer")  # fmt: skip
        raw["w4"] = self.idle_consumer()
        raw["w5_sync"] = self.drain(self.args.sleep_threads, "thread", sleep=True)
        ideal = self.args.sleep_threads * 1000 / SLEEP_MS
        w5 = raw["w5_sync"]["per_second"]
        figures = {
            "w1_per_s": raw["w1"]["per_second"],
            "w2_per_s": raw["w2"]["per_second"],
            "w3_per_s": raw["w3"]["per_second"],
            **{f"w4_caller_{key}": raw["w4"]["caller"][key]
               for key in ("p50_ms", "p95_ms", "p99_ms")},
            "idle_cpu_pct": raw["w4"]["idle_cpu_pct"],
            "w5_sync_pct": 100 * w5 / ideal if w5 else None,
            "rss_mb": max(raw["w2"]["peak_rss_mb"], default=None),
        }  # fmt: skip
        self.app.huey.flush()
        return {"figures": figures, "raw": raw}

    def storage_settings(self) -> dict[str, Any]:
        """What the storage really runs with, read back from it."""
        storage = self.app.huey.storage
        if self.args.variant == "sqlite":
            conn = storage.conn
            return {name: conn.execute(f"PRAGMA {name}").fetchone()[0]
                    for name in ("journal_mode", "synchronous", "busy_timeout")}  # fmt: skip
        info = storage.conn.info("server")
        return {"redis_version": info.get("redis_version"), "blocking": storage.blocking}


def run(args: argparse.Namespace, result: dict[str, Any], progress: Callable[[str], None]) -> int:
    try:
        peer = Peer(args, args.result_file.parent)
    except Exception as exc:
        result.update(status="unreachable", error=f"{type(exc).__name__}: {exc}")
        return EXIT_UNREACHABLE
    try:
        peer.app.huey.storage.conn  # noqa: B018  (connects: a Redis that is down fails here)
        if args.variant == "redis":
            peer.app.huey.storage.conn.ping()
        result["settings"] = peer.storage_settings()
    except Exception as exc:
        result.update(status="unreachable", error=" ".join(f"{type(exc).__name__}: {exc}".split()))
        return EXIT_UNREACHABLE
    code = 0
    try:
        for number in range(1, args.repeat + 1):
            progress(f"{args.variant}: repeat {number}/{args.repeat}")
            result["runs"].append({"repeat": number, result["name"]: peer.measure()})
    except procs.BenchError as exc:
        result.update(status="error", error=str(exc))
        code = 1
    except Exception as exc:
        traceback.print_exc()
        result.update(status="error", error=f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        result["problems"] = peer.problems
        peer.app.huey.flush()
    return code


def run_in_child(
    variant: str, redis_url: str, flags: list[str], env: dict[str, str], scratch: Path
) -> dict[str, Any]:
    """Measure one variant in a child process (``bench.run``'s side); its result."""
    name = f"huey_{variant}"
    result_file = scratch / f"{name}.json"
    where = f"sqlite:{scratch / 'huey.sqlite3'}" if variant == "sqlite" else f"redis:{redis_url}"
    # A name of this run's own: huey's Redis keys are prefixed with it.
    child_env = {**env, "OFFLOAD_BENCH_HUEY": where,
                 "OFFLOAD_BENCH_HUEY_NAME": f"offload-bench-{os.getpid()}"}  # fmt: skip
    command = [sys.executable, "-m", "bench.huey_peer", "--variant", variant,
               "--result-file", str(result_file), *flags]  # fmt: skip
    code = procs.run_to_end(command, ROOT, child_env)
    result: dict[str, Any] = {"name": name, "status": "error", "problems": [], "runs": [],
                              "error": f"the huey process exited with status {code}"}  # fmt: skip
    if result_file.exists():
        result = json.loads(result_file.read_text())
    if code == EXIT_UNREACHABLE:
        result["status"] = "unreachable"
    elif code != 0 and result["status"] == "ok":
        result.update(status="error", error=f"the huey process exited with status {code}")
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.huey_peer")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--result-file", type=Path, required=True)
    for option, kind, default in (
        ("--repeat", int, 1), ("--tasks", int, 2000), ("--latency-tasks", int, 200),
        ("--latency-rate", float, 20.0), ("--idle-seconds", float, 3.0),
        ("--sleep-tasks", int, 2000), ("--sleep-threads", int, 10),
    ):  # fmt: skip
        parser.add_argument(option, type=kind, default=default)
    parser.add_argument("--w3-huey", default="2,4")
    # bench.run passes every measurement option on; the others are not huey's.
    args, _ = parser.parse_known_args(argv)
    args.w3_huey = [int(item) for item in args.w3_huey.split(",")]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    name = f"huey_{args.variant}"
    result: dict[str, Any] = {"name": name, "status": "ok", "error": None, "problems": [],
                              "version": version("huey"), "settings": {}, "runs": []}  # fmt: skip
    try:
        code = run(args, result, log)
    finally:
        args.result_file.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
