"""The workloads, each measured the same way on every system.

W1 enqueue one by one (and in bulk), W2 drain with one process and one thread,
W3 drain at the best of a few concurrencies, W4 an idle worker's latency and
CPU use, W5 tasks that sleep 20 ms (sync and async), W6 CPU-bound tasks with
one and two processes. Drain rates are counted from the first task's
``started_at`` to the last one's ``finished_at``, read from the system's table,
so the workers' start-up and exit are left out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from bench import procs
from bench.systems import Concurrency, System

START_TIMEOUT = 60.0
SLEEP_MS = 20
CPU_TASK_MS = 50


class BenchError(Exception):
    """A run that cannot give a trustworthy figure: it is reported, never averaged in."""


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
    problems: list[str] = field(default_factory=list)
    cpu_rounds: int = 0

    def count(self, system: System, offload_count: int, peer_count: int) -> int:
        return offload_count if system.name == "offload" else peer_count


# -- W1: enqueue ---------------------------------------------------------------------------


def enqueue_one_by_one(ctx: Context, system: System) -> dict[str, Any]:
    from bench.tasks import noop

    task = system.task(noop)
    count = ctx.tasks
    system.empty()
    connection.ensure_connection()  # the rate should not include connecting
    begun = time.perf_counter()
    for _ in range(count):
        task.enqueue()  # autocommit: each enqueue is its own committed transaction
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
    """W2: one process, one thread, no-op tasks."""
    from bench.tasks import noop

    count = ctx.count(system, ctx.tasks, ctx.peer_tasks)
    return drain(ctx, system, Concurrency(1, 1), noop, [], count)


def best_drain(ctx: Context, system: System) -> dict[str, Any]:
    """W3: every candidate concurrency once; the best rate."""
    from bench.tasks import noop

    count = ctx.count(system, ctx.tasks, ctx.peer_tasks)
    candidates = ctx.w3_offload if system.name == "offload" else ctx.w3_peer
    tried = [drain(ctx, system, c, noop, [], count) for c in candidates]
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
    """The CPU an idle worker uses, then the latency of tasks enqueued to it at a steady rate."""
    from bench.tasks import noop

    task = system.task(noop)
    system.empty()
    # The workers' defaults: an idle worker is measured as it is deployed.
    group = procs.start(system.worker_commands(None, burst=False), ctx.root, ctx.env, ctx.problems)
    ids: list[Any] = []
    try:
        # Once the warm-up task has run, the worker has started, connected and
        # imported the task; a second later it is asleep in its idle wait.
        warm_up = task.enqueue().id
        wait_until(lambda: system.finished([warm_up]), START_TIMEOUT, group,
                   f"{system.label}: the worker did not run the warm-up task")  # fmt: skip
        time.sleep(1)
        cpu_before, begun = group.cpu_seconds(), time.perf_counter()
        time.sleep(ctx.idle_seconds)
        cpu = group.cpu_seconds() - cpu_before
        idle_pct = 100 * cpu / (time.perf_counter() - begun)

        begun = time.perf_counter()
        for index in range(ctx.latency_tasks):
            # A fixed schedule, not a fixed pause: a slow enqueue does not
            # push every later one back.
            delay = begun + index / ctx.latency_rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            with transaction.atomic():
                ids.append(task.enqueue().id)
        wait_until(lambda: system.finished(ids), START_TIMEOUT, group,
                   f"{system.label}: the worker did not finish the latency tasks")  # fmt: skip
        group.sample_memory()
    finally:
        codes = group.stop()
    if any(codes):
        ctx.problems.append(f"{system.label} latency: a worker exited with status {codes}")
    check_all_successful(ctx, f"{system.label} latency", len(ids), system.statuses(ids))
    samples = system.waits_ms(ids)
    if not samples:
        raise BenchError(f"{system.label} latency: no task was started")
    return {
        "tasks": len(ids),
        "rate_per_second": ctx.latency_rate,
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "max_ms": samples[-1],
        "samples_ms": [round(sample, 3) for sample in samples],
        "idle_seconds": ctx.idle_seconds,
        "idle_cpu_pct": idle_pct,
    }


def wait_until(done: Callable[[], bool], timeout: float, group: procs.Group, failure: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        exited = [p.returncode for p in group.processes if p.poll() is not None]
        if exited:
            raise BenchError(f"{failure}: it exited with status {exited[0]}")
        if time.monotonic() > deadline:
            raise BenchError(f"{failure} within {timeout:.0f}s")
        time.sleep(procs.POLL_SECONDS)


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: a latency some task really had, never an interpolation."""
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# -- one repeat of everything ------------------------------------------------------------------


def measure(ctx: Context, system: System, log: Callable[[str], None]) -> dict[str, Any]:
    """Every workload once on ``system``; the figures the table shows, and the raw runs."""
    raw: dict[str, Any] = {}
    raw["w1"] = enqueue_one_by_one(ctx, system)
    raw["bulk"] = enqueue_bulk(ctx, system)
    log(f"{system.label}: enqueue {raw['w1']['per_second']:.0f}/s; draining")
    raw["w2"] = single_drain(ctx, system)
    raw["w3"] = best_drain(ctx, system)
    log(f"{system.label}: drain {raw['w2']['per_second'] or 0:.0f}/s (1x1), "
        f"{raw['w3']['per_second'] or 0:.0f}/s (best); idle worker")  # fmt: skip
    raw["w4"] = idle_worker(ctx, system)
    log(f"{system.label}: latency p50 {raw['w4']['p50_ms']:.1f} ms; sleeping tasks")
    raw["w5_sync"] = sleepers(ctx, system, is_async=False)
    raw["w5_async"] = sleepers(ctx, system, is_async=True)
    raw["w5_async_wide"] = sleepers(ctx, system, is_async=True, wide=True)
    log(f"{system.label}: CPU-bound tasks")
    raw["w6"] = cpu_scaling(ctx, system)
    system.empty()
    figures = {
        "w1_per_s": raw["w1"]["per_second"],
        "bulk_per_s": raw["bulk"]["per_second"] if raw["bulk"] else None,
        "w2_per_s": raw["w2"]["per_second"],
        "w3_per_s": raw["w3"]["per_second"],
        "w4_p50_ms": raw["w4"]["p50_ms"],
        "w4_p99_ms": raw["w4"]["p99_ms"],
        "idle_cpu_pct": raw["w4"]["idle_cpu_pct"],
        "w5_sync_pct": raw["w5_sync"]["pct_of_ideal"],
        "w5_async_pct": raw["w5_async"]["pct_of_ideal"],
        "w5_async_wide_x": raw["w5_async_wide"]["x_threads_ideal"],
        "w6_ratio": raw["w6"]["ratio"],
        # The largest worker process during the single-process drain.
        "rss_mb": max(raw["w2"]["peak_rss_mb"], default=None),
    }
    return {"figures": figures, "raw": raw}
