"""offload's coordination, measured: W8 keyed drain, W9 rate limit, W10 workflow fan-out/fan-in.

offload only (the peers have no such features), with the task body of W1-W4
(``bench.tasks.append_line``), so each can be read against the same run's
unkeyed W3. Figures come from the task table (the database's clock) and from
the lines the task bodies append (the host's monotonic clock); each figure
says which (``bench.coord_figures``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction

from bench import procs
from bench.caller_clock import read_stamps, summary
from bench.coord_figures import (
    callback_wait,
    handover_gaps,
    most_at_once_per_key,
    most_in_window,
    pct,
    rate_after_first_window,
)
from bench.procs import BenchError
from bench.systems import Concurrency, System
from bench.workloads import (
    START_TIMEOUT,
    Context,
    burst,
    check_all_successful,
    everyday_load,
    warm_up,
)

# W9's rate is per second: the window its claims and starts are counted in.
RATE_PERIOD = 1.0


def seconds(at: datetime) -> float:
    return at.timestamp()


# -- offload's own workloads, W7-W10 -------------------------------------------------------


def offload_only(
    ctx: Context,
    system: System,
    on: frozenset[str],
    raw: dict[str, Any],
    log: Callable[[str], None],
) -> None:
    if "w7" in on:
        raw["w7"] = everyday_load(ctx, system)
    # The keyed drain and the workflow run at W3's best concurrency of this
    # run, so that W8 reads against the unkeyed W3 at the same concurrency.
    best = ctx.w3_offload[0]
    if raw.get("w3"):
        best = Concurrency(*map(int, raw["w3"]["concurrency"].split("x")))
    if "w8" in on:
        raw["w8"] = keyed_drain(ctx, system, best)
        log(f"{system.label}: W8 keyed drain {raw['w8']['per_second'] or 0:.0f}/s")
    if "w9" in on:
        raw["w9"] = rate_limited(ctx, system)
        log(f"{system.label}: W9 {raw['w9']['start_rate'] or 0:.1f} starts/s "
            f"at {ctx.w9_rate}/s")  # fmt: skip
    if "w10" in on:
        raw["w10"] = fan_out_in(ctx, system, best)
        log(f"{system.label}: W10 callback {raw['w10']['callback_ms_host']:.1f} ms "
            "after the last member")  # fmt: skip
    if {"w8", "w9", "w10"} & on:
        forget_coordination()


# The rows the coordination features keep beside the tasks (a lock row per key
# ever used, a workflow's links).
COORDINATION_TABLES = ("offload_concurrency_key", "offload_rate_key", "offload_task_dependency")


def forget_coordination() -> None:
    """Delete the keys' and links' rows, so that the next repeat's W1-W7 run
    as in a project that never used them (the rate promoter reads every rate
    key each turn)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in COORDINATION_TABLES:
            cursor.execute(f"DELETE FROM {table}")


# -- W8: a drain spread over concurrency keys ---------------------------------------------------


def keyed_drain(ctx: Context, system: System, concurrency: Concurrency) -> dict[str, Any]:
    """``w8_tasks`` tasks over ``w8_keys`` keys of limit ``w8_limit``, drained by burst workers.

    Afterwards, per key, the most tasks held at once, on the database's clock:
    ``held`` from the claim (``claimed_at``) to the end (``finished_at``),
    ``ran`` from ``started_at`` (when the code began) to the end.
    """
    from bench.tasks import append_line

    path = str(ctx.stamp_file("w8"))
    keyed = [append_line.limited(f"w8-{k}", limit=ctx.w8_limit) for k in range(ctx.w8_keys)]
    system.empty()
    with transaction.atomic():
        for index in range(ctx.w8_tasks):
            keyed[index % ctx.w8_keys].enqueue(path, index)
    run = burst(ctx, system, concurrency, ctx.w8_tasks)
    rows = list(
        system.rows().values_list("concurrency_key", "claimed_at", "started_at", "finished_at")
    )
    if any(None in row for row in rows):
        raise BenchError("W8: a task has no claim, start or finish time")
    gaps = handover_gaps((k, seconds(c), seconds(f)) for k, c, _, f in rows)
    held = most_at_once_per_key((k, seconds(c), seconds(f)) for k, c, _, f in rows)
    ran = most_at_once_per_key((k, seconds(s), seconds(f)) for k, _, s, f in rows)
    return {
        **run,
        "keys": ctx.w8_keys,
        "limit": ctx.w8_limit,
        "most_held_per_key": held,
        "most_running_per_key": ran,
        "over_limit": max(held.values()) - ctx.w8_limit,
        # How long a slot freed by a task's end stood empty (ms, database clock).
        "handover_ms": summary([1000 * gap for gap in gaps]) if gaps else None,
    }


# -- W9: one rate key ---------------------------------------------------------------------------


def rate_limited(ctx: Context, system: System) -> dict[str, Any]:
    """``w9_tasks`` tasks of one rate key at ``w9_rate``/s, enqueued at once, to a default worker.

    A default worker, not a burst one: the blocked tasks are let in by time
    (the rate promoter), and a burst run stops when nothing is due.
    """
    from bench.tasks import append_line

    path = ctx.stamp_file("w9")
    rate = ctx.w9_rate
    limited = append_line.rate_limited("w9", (rate, RATE_PERIOD))
    system.empty()
    group = procs.start(system.worker_commands(None, burst=False), ctx.root, ctx.env, ctx.problems)
    try:
        warm_up(system, append_line, ctx.stamp_file("w9-warm-up"), group)
        with transaction.atomic():
            ids = [limited.enqueue(str(path), index).id for index in range(ctx.w9_tasks)]
        timeout = START_TIMEOUT + 2 * ctx.w9_tasks / rate
        group.wait_until(lambda: system.finished(ids), timeout,
                         "offload: the worker did not run the W9 tasks")  # fmt: skip
    finally:
        codes = group.stop()
    if any(codes):
        ctx.problems.append(f"{system.label} W9: a worker exited with status {codes}")
    check_all_successful(ctx, f"{system.label} W9", len(ids), system.statuses(ids))
    starts = list(read_stamps(path).values())
    claims = [seconds(at) for at in system.rows().filter(pk__in=ids).values_list(
        "claimed_at", flat=True) if at is not None]  # fmt: skip
    achieved = rate_after_first_window(starts, rate)
    most_claims = most_in_window(claims, RATE_PERIOD)
    most_starts = most_in_window(starts, RATE_PERIOD)
    return {
        "tasks": len(ids),
        "rate": rate,
        "start_rate": achieved,
        "claim_rate": rate_after_first_window(claims, rate),
        "start_rate_pct": pct(achieved, rate),
        "most_claims_in_1s": most_claims,
        "most_claims_pct": pct(most_claims, rate),
        "most_starts_in_1s": most_starts,
        "most_starts_pct": pct(most_starts, rate),
    }


# -- W10: a group and its callback ----------------------------------------------------------


def fan_out_in(ctx: Context, system: System, concurrency: Concurrency) -> dict[str, Any]:
    """A group of ``w10_members`` members and a callback, enqueued to a running worker.

    The enqueue (one transaction) on the host's clock; the members' drain and
    the callback's wait for the last member both on the host's clock (the
    lines the bodies append at their start) and on the database's (the last
    member's ``finished_at`` to the callback's ``started_at``).
    """
    from bench.tasks import append_after, append_line
    from offload.workflows import call, group

    path = ctx.stamp_file("w10")
    members = ctx.w10_members
    flow = group(call(append_line, str(path), n) for n in range(members)).then(
        call(append_after, str(path), members)
    )
    system.empty()
    workers = procs.start(
        system.worker_commands(concurrency, burst=False), ctx.root, ctx.env, ctx.problems
    )
    try:
        warm_up(system, append_line, ctx.stamp_file("w10-warm-up"), workers)
        begun = time.perf_counter()
        workflow = flow.enqueue()
        enqueue_seconds = time.perf_counter() - begun
        ids = [result.id for result in workflow.results]
        workers.wait_until(lambda: system.finished(ids), START_TIMEOUT + members / 100,
                           "offload: the worker did not run the W10 workflow")  # fmt: skip
    finally:
        codes = workers.stop()
    if any(codes):
        ctx.problems.append(f"{system.label} W10: a worker exited with status {codes}")
    check_all_successful(ctx, f"{system.label} W10", len(ids), system.statuses(ids))
    return {
        "members": members,
        "concurrency": concurrency.label,
        "enqueue_seconds": enqueue_seconds,
        **w10_times(system, path, ids, members),
    }


def w10_times(system: System, path: Any, ids: list[Any], members: int) -> dict[str, Any]:
    stamps = read_stamps(path)
    callback_stamp = stamps.pop(members, None)
    if callback_stamp is None or len(stamps) != members:
        raise BenchError(f"W10: {len(stamps)} of {members} members and the callback stamped")
    rows = dict(system.rows().filter(pk__in=ids).values_list("pk", "started_at"))
    finished = dict(system.rows().filter(pk__in=ids).values_list("pk", "finished_at"))
    member_ids, callback_id = ids[:-1], ids[-1]
    member_ends = {n: seconds(finished[int(pk)]) for n, pk in enumerate(member_ids)}
    first_start = min(seconds(rows[int(pk)]) for pk in member_ids)
    drain_db = max(member_ends.values()) - first_start
    drain_host = max(stamps.values()) - min(stamps.values())
    return {
        "drain_seconds_db": drain_db,
        "drain_per_s_db": members / drain_db if drain_db > 0 else None,
        "drain_seconds_host": drain_host,
        "callback_ms_host": 1000 * callback_wait(stamps, callback_stamp),
        "callback_ms_db": 1000 * callback_wait(member_ends, seconds(rows[int(callback_id)])),
    }


# -- the figures the table shows -----------------------------------------------------------------


def coordination_figures(
    raw: dict[str, Any], w3_tried: dict[str, float | None] | None
) -> dict[str, float | None]:
    """W8-W10's figures; W8 also as a percentage of W3 at the same concurrency, same run."""
    w8, w9, w10 = raw.get("w8"), raw.get("w9"), raw.get("w10")
    w3_same = (w3_tried or {}).get(w8["concurrency"]) if w8 else None
    return {
        "w8_per_s": w8["per_second"] if w8 else None,
        "w8_pct_w3": pct(w8["per_second"], w3_same) if w8 else None,
        "w8_over_limit": w8["over_limit"] if w8 else None,
        "w8_handover_p50_ms": (w8.get("handover_ms") or {}).get("p50_ms") if w8 else None,
        "w9_start_rate_pct": w9["start_rate_pct"] if w9 else None,
        "w9_most_claims_pct": w9["most_claims_pct"] if w9 else None,
        "w9_most_starts_pct": w9["most_starts_pct"] if w9 else None,
        "w10_enqueue_ms": 1000 * w10["enqueue_seconds"] if w10 else None,
        "w10_drain_per_s": w10["drain_per_s_db"] if w10 else None,
        "w10_callback_ms": w10["callback_ms_host"] if w10 else None,
        "w10_callback_db_ms": w10["callback_ms_db"] if w10 else None,
    }
