"""The workloads, each measured the same way on every system.

W1 enqueue one by one (and in bulk), W2 drain with one process and one thread,
W3 drain at the best of a few concurrencies, W4 an idle worker's latency (on
the database's clock and on the caller's) and CPU use, W5 tasks that sleep
20 ms (sync and async), W6 CPU-bound tasks with one and two processes, and
(offload only) W7, a producer of two threads enqueuing while a default worker
drains (W7 to W10, offload's own, are run from ``bench.coordination``). W1-W4
and W7 run ``bench.tasks.append_line``, which appends one line
to a file, the body huey runs too (``bench.huey_peer``). Drain rates are
counted from the first task's ``started_at`` to the last one's
``finished_at``, read from the system's table, so the workers' start-up and
exit are left out.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from bench import procs
from bench.caller_clock import paced, percentile, read_stamps, summary, waits_ms
from bench.procs import BenchError
from bench.systems import Concurrency, System

START_TIMEOUT = 60.0
SLEEP_MS = 20
CPU_TASK_MS = 50


@dataclass
class Context:
    """What every workload needs: the run's parameters and where to report problems."""

    root: Path
    env: dict[str, str]
    tasks: int
    peer_tasks: int
    bulk_tasks: int
    w3_offload: list[Concurrency]
    w3_peer: list[Concurrency]
    latency_tasks: int
    latency_rate: float
    idle_seconds: float
    sleep_tasks: int
    peer_sleep_tasks: int
    sleep_threads: int
    async_slots: int
    async_tasks: int
    cpu_tasks: int
    w7_tasks: int = 4000
    w8_tasks: int = 2000
    w8_keys: int = 20
    w8_limit: int = 2
    w9_tasks: int = 300
    w9_rate: int = 50
    w10_members: int = 1000
    # The workloads to run (--only); every one by default.
    selected: frozenset[str] = frozenset(())
    # Where the task bodies' stamp files go; bench.run gives each child its own.
    stamp_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    problems: list[str] = field(default_factory=list)
    cpu_rounds: int = 0
    _files: itertools.count[int] = field(default_factory=itertools.count)

    def stamp_file(self, what: str) -> Path:
        """A new, empty file for one measurement's task bodies to append to."""
        path = self.stamp_dir / f"{what}-{next(self._files)}.stamps"
        path.unlink(missing_ok=True)
        return path

    def count(self, system: System, offload_count: int, peer_count: int) -> int:
        return offload_count if system.name == "offload" else peer_count


# -- W1: enqueue ---------------------------------------------------------------------------


def enqueue_one_by_one(ctx: Context, system: System) -> dict[str, Any]:
    from bench.tasks import append_line

    task = system.task(append_line)
    count = ctx.tasks
    path = str(ctx.stamp_file("w1"))
    system.empty()
    connection.ensure_connection()  # the rate should not include connecting
    begun = time.perf_counter()
    for index in range(count):
        task.enqueue(path, index)  # autocommit: each enqueue is its own committed transaction
    seconds = time.perf_counter() - begun
    return {"tasks": count, "seconds": seconds, "per_second": count / seconds}


def enqueue_bulk(ctx: Context, system: System) -> dict[str, Any] | None:
    from bench.tasks import sleep_ms

    task = system.task(sleep_ms)
    system.empty()
    connection.ensure_connection()
    calls = [[index % 100] for index in range(ctx.bulk_tasks)]
    begun = time.perf_counter()
    if not system.enqueue_many(task, calls):
        return None
    seconds = time.perf_counter() - begun
    if system.rows().count() != ctx.bulk_tasks:
        raise BenchError("bulk enqueue: the table does not hold every task enqueued")
    return {"tasks": ctx.bulk_tasks, "seconds": seconds, "per_second": ctx.bulk_tasks / seconds}


# -- W2, W3, W5, W6: drains ------------------------------------------------------------------


def fill(system: System, task: Any, args: list[Any], count: int) -> None:
    """``count`` tasks, committed together (a drain measures the worker, not this)."""
    system.empty()
    bound = system.task(task)
    with transaction.atomic():
        for _ in range(count):
            bound.enqueue(*args)


def drain(
    ctx: Context, system: System, concurrency: Concurrency, task: Any, args: list[Any], count: int
) -> dict[str, Any]:
    """Enqueue ``count`` tasks, run burst workers on them; the rate and the peak RSS."""
    fill(system, task, args, count)
    return burst(ctx, system, concurrency, count)


def burst(ctx: Context, system: System, concurrency: Concurrency, count: int) -> dict[str, Any]:
    """Run burst workers on the ``count`` tasks enqueued; the rate and the peak RSS."""
    timeout = 60 + count / 5  # a worker this slow is broken, not slow
    begun = time.perf_counter()
    group = procs.start(
        system.worker_commands(concurrency, burst=True), ctx.root, ctx.env, ctx.problems
    )
    try:
        codes = group.wait(timeout)
    except TimeoutError:
        group.stop()
        raise BenchError(
            f"{system.label} {concurrency.label}: burst workers did not finish in {timeout:.0f}s"
        ) from None
    except BaseException:
        group.stop()
        raise
    wall = time.perf_counter() - begun
    group.reap()
    what = f"{system.label} drain {concurrency.label} of {count}"
    if any(codes):
        ctx.problems.append(f"{what}: a worker exited with status {codes}")
    check_all_successful(ctx, what, count, system.statuses())
    first, last = system.span()
    if first is None or last is None:
        raise BenchError(f"{what}: no task was started or finished")
    steady = (last - first).total_seconds()
    peaks = sorted(group.peak_rss.values())
    return {
        "tasks": count,
        "concurrency": concurrency.label,
        "wall_seconds": wall,
        "steady_seconds": steady,
        # None, not infinity, which JSON cannot hold (a clock tick too coarse).
        "per_second": count / steady if steady > 0 else None,
        "peak_rss_mb": [round(peak / 2**20, 1) for peak in peaks],
    }


def check_all_successful(ctx: Context, what: str, expected: int, counts: dict[str, int]) -> None:
    successful = counts.get("SUCCESSFUL", 0)
    if successful != expected:
        found = ", ".join(f"{n} {status}" for status, n in counts.items() if status != "SUCCESSFUL")
        missing = expected - sum(counts.values())
        ctx.problems.append(
            f"{what}: {expected - successful} of {expected} tasks not SUCCESSFUL "
            f"({found}{', ' if found and missing else ''}{f'{missing} missing' if missing else ''})"
        )


def single_drain(ctx: Context, system: System) -> dict[str, Any]:
    """W2: one process, one thread, tasks that append one line."""
    from bench.tasks import append_line

    count = ctx.count(system, ctx.tasks, ctx.peer_tasks)
    args = [str(ctx.stamp_file("w2")), 0]
    return drain(ctx, system, Concurrency(1, 1), append_line, args, count)


def best_drain(ctx: Context, system: System) -> dict[str, Any]:
    """W3: every candidate concurrency once; the best rate."""
    from bench.tasks import append_line

    count = ctx.count(system, ctx.tasks, ctx.peer_tasks)
    candidates = ctx.w3_offload if system.name == "offload" else ctx.w3_peer
    tried = [
        drain(ctx, system, c, append_line, [str(ctx.stamp_file("w3")), 0], count)
        for c in candidates
    ]
    best = max(tried, key=lambda run: run["per_second"] or 0)
    return {**best, "tried": {run["concurrency"]: run["per_second"] for run in tried}}


def sleepers(ctx: Context, system: System, *, is_async: bool, wide: bool = False) -> dict[str, Any]:
    """W5: tasks sleeping 20 ms; the rate and its share of the ideal (slots x 50/s).

    ``wide``: async tasks with ``ctx.async_slots`` slots (the worker's default
    100) rather than as many as there are threads, which shows what async
    tasks are for: the rate is also given as a multiple of what the threads
    could do at best (``x_threads_ideal``).
    """
    from bench.tasks import async_sleep_ms, sleep_ms

    threads = ctx.sleep_threads
    slots = (ctx.async_slots if wide else threads) if is_async else None
    concurrency = Concurrency(1, threads, async_slots=slots)
    count = ctx.count(system, ctx.async_tasks if wide else ctx.sleep_tasks, ctx.peer_sleep_tasks)
    task = async_sleep_ms if is_async else sleep_ms
    run = drain(ctx, system, concurrency, task, [SLEEP_MS], count)
    ideal = system.ideal_slots(concurrency, is_async=is_async) * 1000 / SLEEP_MS
    run["ideal_per_second"] = ideal
    run["pct_of_ideal"] = 100 * run["per_second"] / ideal if run["per_second"] else None
    threads_ideal = threads * 1000 / SLEEP_MS
    run["x_threads_ideal"] = run["per_second"] / threads_ideal if run["per_second"] else None
    return run


def calibrate_cpu_rounds() -> int:
    """Rounds of ``spin`` that take about CPU_TASK_MS in this interpreter."""
    from bench.tasks import spin

    rounds = 100_000
    best = math.inf
    for _ in range(3):
        begun = time.perf_counter()
        spin(rounds)
        best = min(best, time.perf_counter() - begun)
    return max(1000, int(rounds * CPU_TASK_MS / 1000 / best))


def cpu_scaling(ctx: Context, system: System) -> dict[str, Any]:
    """W6: CPU-bound tasks with one process and with two; the ratio of the rates."""
    from bench.tasks import cpu_bound

    one = drain(ctx, system, Concurrency(1, 1), cpu_bound, [ctx.cpu_rounds], ctx.cpu_tasks)
    two = drain(ctx, system, Concurrency(2, 1), cpu_bound, [ctx.cpu_rounds], ctx.cpu_tasks)
    ratio = None
    if one["per_second"] and two["per_second"]:
        ratio = two["per_second"] / one["per_second"]
    return {"one_process": one, "two_processes": two, "ratio": ratio}


# -- W4: an idle worker ---------------------------------------------------------------------


def idle_worker(ctx: Context, system: System) -> dict[str, Any]:
    """The CPU an idle worker uses, then the latency of tasks enqueued to it at a steady rate.

    The latency twice, from the same tasks: on the database's clock (the
    stored ``enqueued_at`` to ``started_at``) and on the caller's (host time
    just before ``enqueue()`` to host time at the task's first line).
    """
    from bench.tasks import append_line

    task = system.task(append_line)
    path = ctx.stamp_file("w4")
    system.empty()
    # The workers' defaults: an idle worker is measured as it is deployed.
    group = procs.start(system.worker_commands(None, burst=False), ctx.root, ctx.env, ctx.problems)
    ids: list[Any] = []
    sent: dict[int, float] = {}
    try:
        warm_up(system, task, path, group)
        cpu_before, begun = group.cpu_seconds(), time.perf_counter()
        time.sleep(ctx.idle_seconds)
        cpu = group.cpu_seconds() - cpu_before
        idle_pct = 100 * cpu / (time.perf_counter() - begun)

        for index in paced(ctx.latency_tasks, ctx.latency_rate):
            sent[index] = time.monotonic()  # the caller's clock starts before enqueue()
            with transaction.atomic():
                ids.append(task.enqueue(str(path), index).id)
        group.wait_until(lambda: system.finished(ids), START_TIMEOUT,
                   f"{system.label}: the worker did not finish the latency tasks")  # fmt: skip
        group.sample_memory()
    finally:
        codes = group.stop()
    if any(codes):
        ctx.problems.append(f"{system.label} latency: a worker exited with status {codes}")
    check_all_successful(ctx, f"{system.label} latency", len(ids), system.statuses(ids))
    samples = system.waits_ms(ids)
    caller = waits_ms(sent, read_stamps(path))
    if not samples or not caller:
        raise BenchError(f"{system.label} latency: no task was started")
    return {
        "tasks": len(ids),
        "rate_per_second": ctx.latency_rate,
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "max_ms": samples[-1],
        "samples_ms": [round(sample, 3) for sample in samples],
        "caller": {**summary(caller), "samples_ms": [round(wait, 3) for wait in caller]},
        "idle_seconds": ctx.idle_seconds,
        "idle_cpu_pct": idle_pct,
    }


def warm_up(system: System, task: Any, path: Path, group: procs.Group) -> None:
    """Run one task and rest a second: the worker is then started, connected and idle.

    Once the warm-up task has run, the worker has connected and imported the
    task; a second later it is asleep in its idle wait.
    """
    first = task.enqueue(str(path), -1).id
    group.wait_until(lambda: system.finished([first]), START_TIMEOUT,
               f"{system.label}: the worker did not run the warm-up task")  # fmt: skip
    time.sleep(1)


# -- W7: enqueues and a default worker at once -----------------------------------------------


def everyday_load(ctx: Context, system: System) -> dict[str, Any]:
    """Two threads enqueue ``w7_tasks`` as fast as they can while a default worker drains.

    The enqueue rate held (tasks over the producers' wall time) and the
    end-to-end rate (tasks over the time from the first enqueue to the last
    task's first line), both on the host's monotonic clock.
    """
    from bench.tasks import append_line

    task = system.task(append_line)
    path = ctx.stamp_file("w7")
    system.empty()
    group = procs.start(system.worker_commands(None, burst=False), ctx.root, ctx.env, ctx.problems)
    count = ctx.w7_tasks - ctx.w7_tasks % 2
    ready = threading.Barrier(3)
    finished: list[float] = []
    failures: list[BaseException] = []

    def produce(first: int) -> None:
        try:
            connection.ensure_connection()  # the rate should not include connecting
            ready.wait()
            for token in range(first, first + count // 2):
                task.enqueue(str(path), token)
            finished.append(time.monotonic())
        except BaseException as exc:
            failures.append(exc)
            ready.abort()
        finally:
            connection.close()  # this thread's own connection

    try:
        warm_up(system, task, path, group)
        producers = [threading.Thread(target=produce, args=(n * count // 2,)) for n in (0, 1)]
        for producer in producers:
            producer.start()
        ready.wait()
        begun = time.monotonic()
        for producer in producers:
            producer.join()
        if failures:
            raise BenchError(f"{system.label} W7: a producer failed: {failures[0]!r}")
        timeout = START_TIMEOUT + count / 100
        group.wait_until(lambda: len(read_stamps(path)) > count, timeout,
                   f"{system.label}: the worker did not run the W7 tasks")  # fmt: skip
    finally:
        codes = group.stop()
    if any(codes):
        ctx.problems.append(f"{system.label} W7: a worker exited with status {codes}")
    stamps = read_stamps(path)
    stamps.pop(-1, None)  # the warm-up task
    last = max(stamps.values())
    return {
        "tasks": count,
        "enqueue_per_s": count / (max(finished) - begun),
        "drain_per_s": count / (last - begun),
    }


# -- one repeat of everything ------------------------------------------------------------------

WORKLOADS = ("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w10")


def measure(ctx: Context, system: System, log: Callable[[str], None]) -> dict[str, Any]:
    """Every selected workload once on ``system``; the figures the table shows, and the raw runs."""
    on = ctx.selected or frozenset(WORKLOADS)
    raw: dict[str, Any] = {}
    if "w1" in on:
        raw["w1"] = enqueue_one_by_one(ctx, system)
        raw["bulk"] = enqueue_bulk(ctx, system)
        log(f"{system.label}: enqueue {raw['w1']['per_second']:.0f}/s")
    if "w2" in on:
        raw["w2"] = single_drain(ctx, system)
        log(f"{system.label}: drain {raw['w2']['per_second'] or 0:.0f}/s (1x1)")
    if "w3" in on:
        raw["w3"] = best_drain(ctx, system)
        log(f"{system.label}: drain {raw['w3']['per_second'] or 0:.0f}/s (best)")
    if "w4" in on:
        raw["w4"] = idle_worker(ctx, system)
        log(f"{system.label}: latency p50 {raw['w4']['p50_ms']:.1f} ms, "
            f"{raw['w4']['caller']['p50_ms']:.1f} ms on the caller's clock")  # fmt: skip
    if "w5" in on:
        raw["w5_sync"] = sleepers(ctx, system, is_async=False)
        raw["w5_async"] = sleepers(ctx, system, is_async=True)
        raw["w5_async_wide"] = sleepers(ctx, system, is_async=True, wide=True)
        log(f"{system.label}: sleeping tasks done")
    if "w6" in on:
        raw["w6"] = cpu_scaling(ctx, system)
    # W7-W10 are offload's own (W7 against its W1 and W3; the others use what
    # only offload has): the peers' workers are measured alone.
    if system.name == "offload":
        from bench.coordination import offload_only

        offload_only(ctx, system, on, raw, log)
    system.empty()
    return {"figures": figures_of(raw), "raw": raw}


def figures_of(raw: dict[str, Any]) -> dict[str, float | None]:
    """The figures the table shows, from one repeat's raw runs (None where not run)."""
    from bench.coordination import coordination_figures

    def get(name: str, *path: str) -> Any:
        found = raw.get(name)
        for key in path:
            found = found[key] if found else None
        return found

    w1, w3 = get("w1", "per_second"), get("w3", "per_second")
    return {
        "w1_per_s": w1,
        "bulk_per_s": get("bulk", "per_second"),
        "w2_per_s": get("w2", "per_second"),
        "w3_per_s": w3,
        "w4_p50_ms": get("w4", "p50_ms"),
        "w4_p99_ms": get("w4", "p99_ms"),
        **{f"w4_caller_{key}": get("w4", "caller", key) for key in CALLER_KEYS},
        "idle_cpu_pct": get("w4", "idle_cpu_pct"),
        "w5_sync_pct": get("w5_sync", "pct_of_ideal"),
        "w5_async_pct": get("w5_async", "pct_of_ideal"),
        "w5_async_wide_x": get("w5_async_wide", "x_threads_ideal"),
        "w6_ratio": get("w6", "ratio"),
        # The largest worker process during the single-process drain.
        "rss_mb": max(raw["w2"]["peak_rss_mb"], default=None) if raw.get("w2") else None,
        **w7_figures(raw.get("w7"), w1, w3),
        **coordination_figures(raw, get("w3", "tried")),
    }


CALLER_KEYS = ("p50_ms", "p95_ms", "p99_ms")


def w7_figures(
    w7: dict[str, Any] | None, w1: float | None, w3: float | None
) -> dict[str, float | None]:
    """W7's rates, and each as a percentage of the same system's W1 and W3 alone."""
    if w7 is None:
        return dict.fromkeys(("w7_enqueue_per_s", "w7_drain_per_s", "w7_enqueue_pct_w1",
                              "w7_drain_pct_w3"))  # fmt: skip
    return {
        "w7_enqueue_per_s": w7["enqueue_per_s"],
        "w7_drain_per_s": w7["drain_per_s"],
        "w7_enqueue_pct_w1": 100 * w7["enqueue_per_s"] / w1 if w1 else None,
        "w7_drain_pct_w3": 100 * w7["drain_per_s"] / w3 if w3 else None,
    }
