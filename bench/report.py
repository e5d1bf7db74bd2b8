"""The results, read: medians over repeats, offload's ratios, the targets, the plot.

The table's ratio ("best") is offload's figure divided by the fastest peer's
(django-tasks-db on the same database, huey on SQLite, huey on Redis), all
taken in the same run: for rates higher is better, for latencies, CPU and
memory lower is. Each target says what it is judged against
(``bench.targets``). Absolute figures vary from machine to machine and run
to run; the ratios and the targets are what a run is judged on.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.targets import LIMIT_OF, PEERS, fastest_peer, judged_value, ratio, targets_for, verdict


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    digits: int = 0


FIGURES = (
    Figure("w1_per_s", "W1 enqueue, one by one", "tasks/s", True),
    Figure("bulk_per_s", "W1 bulk enqueue_many", "tasks/s", True),
    Figure("w2_per_s", "W2 drain, 1 process 1 thread", "tasks/s", True),
    Figure("w3_per_s", "W3 drain, best concurrency", "tasks/s", True),
    Figure("w4_p50_ms", "W4 latency p50 at 20/s", "ms", False, 1),
    Figure("w4_p99_ms", "W4 latency p99 at 20/s", "ms", False, 1),
    # The same tasks on the caller's clock: before enqueue() to the first line.
    Figure("w4_caller_p50_ms", "W4 caller's clock p50", "ms", False, 2),
    Figure("w4_caller_p95_ms", "W4 caller's clock p95", "ms", False, 2),
    Figure("w4_caller_p99_ms", "W4 caller's clock p99", "ms", False, 2),
    Figure("idle_cpu_pct", "W4 idle worker CPU", "% core", False, 2),
    Figure("w5_sync_pct", "W5 20 ms sleeps, sync", "% ideal", True),
    Figure("w5_async_pct", "W5 20 ms sleeps, async", "% ideal", True),
    # Async tasks at the worker's default slots, as a multiple of the best the
    # threads of the two rows above could do (threads x 50/s).
    Figure("w5_async_wide_x", "W5 async, 100 slots", "x threads", True, 1),
    Figure("w6_ratio", "W6 CPU-bound, 2 vs 1 process", "x", True, 2),
    Figure("rss_mb", "Peak RSS per worker process", "MB", False),
    Figure("w7_enqueue_per_s", "W7 enqueue, 2 threads + worker", "tasks/s", True),
    Figure("w7_drain_per_s", "W7 end to end", "tasks/s", True),
    Figure("w7_enqueue_pct_w1", "W7 enqueue, % of W1 alone", "%", True),
    Figure("w7_drain_pct_w3", "W7 end to end, % of W3 alone", "%", True),
    # offload's coordination (bench.coordination): W8 at W3's best concurrency.
    Figure("w8_per_s", "W8 keyed drain", "tasks/s", True),
    Figure("w8_pct_w3", "W8 keyed, % of W3 unkeyed", "%", True),
    Figure("w8_over_limit", "W8 most held by a key - limit", "tasks", False),
    # A freed slot's wait for its key's next claim: the promotion and wake-up.
    Figure("w8_handover_p50_ms", "W8 end to next claim, p50", "ms", False, 1),
    Figure("w9_start_rate_pct", "W9 start rate, % of the limit", "%", False, 1),
    Figure("w9_most_claims_pct", "W9 most claims in 1 s, % limit", "%", False),
    Figure("w9_most_starts_pct", "W9 most starts in 1 s, % limit", "%", False),
    Figure("w10_enqueue_ms", "W10 enqueue group + callback", "ms", False),
    Figure("w10_drain_per_s", "W10 members' drain", "tasks/s", True),
    Figure("w10_callback_ms", "W10 last member to callback", "ms", False, 1),
    Figure("w10_callback_db_ms", "W10 the same, database clock", "ms", False, 1),
    # Sync and either-kind claims whose plan sorts, on a backlog with every
    # coordinated kind of row (bench.plans): read once per database.
    Figure("plan_sorts", "Claim plans that sort (of 2)", "plans", False),
)


def medians(runs: Sequence[dict[str, Any]], system: str) -> dict[str, float | None]:
    """The median over repeats of each figure (None where no repeat has it)."""
    found: dict[str, float | None] = {}
    for figure in FIGURES:
        values = [
            run[system]["figures"][figure.key]
            for run in runs
            if system in run and run[system]["figures"].get(figure.key) is not None
        ]
        found[figure.key] = statistics.median(values) if values else None
    return found


# Figures named after no workload of their own, and the workload that gives them.
WORKLOAD_OF_PREFIX = {"bulk": "w1", "idle": "w4", "rss": "w2", "plan": "plans"}


def workload_of(key: str) -> str:
    """The workload (as ``--only`` names it) that gives the figure ``key``."""
    prefix = key.split("_")[0]
    return WORKLOAD_OF_PREFIX.get(prefix, prefix)


def verdicts(
    result: dict[str, Any],
    peers: dict[str, dict[str, float | None]],
    selected: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per figure and target: every system's median, the ratio to the fastest peer,
    the database's limit where there is one, and PASS/MISS/SKIP.

    ``peers``: the medians of the peers measured once per run (huey), by name.
    ``selected``: the workloads run (``--only``; None: all), whose figures alone
    get rows.
    """
    figures = {**peers, **result["median"]}
    limits = result.get("limits") or {}
    rows = []
    for figure in FIGURES:
        if selected is not None and workload_of(figure.key) not in selected:
            continue
        ours = figures["offload"].get(figure.key)
        best_name, best = fastest_peer(figure.key, figures, figure.higher_is_better)
        base = {
            "key": figure.key,
            **{name: figures.get(name, {}).get(figure.key) for name in ("offload", *PEERS)},
            "limit": limits.get(LIMIT_OF.get(figure.key, "")),
            "best_peer": best_name,
            "ratio": ratio(ours, best),
        }
        for target in targets_for(figure.key, result["database"]) or [None]:
            if target is None:
                rows.append({**base, "target": None, "judged": None, "verdict": None})
                continue
            value = judged_value(target, figures, limits)
            rows.append({**base, "target": target.text, "judged": value,
                         "verdict": verdict(target, value)})  # fmt: skip
    return rows


def limit_medians(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The database limits' medians over repeats (bench.db_limits' raw figures)."""
    picks = {
        "commit_p50_ms": ("paced", "p50_ms"),
        "commit_p95_ms": ("paced", "p95_ms"),
        "commit_p99_ms": ("paced", "p99_ms"),
        "commit_per_s": ("tight", "per_second"),
    }
    found: dict[str, float | None] = {}
    for name, (part, key) in picks.items():
        values = [run["limits"][part][key] for run in runs if run.get("limits")]
        found[name] = statistics.median(values) if values else None
    return found


def shown(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def format_table(report: dict[str, Any], *, full_plans: bool = False) -> str:
    params = report["parameters"]
    git = report["git"]
    commit = f"{git['commit']}{' (dirty)' if git['dirty'] else ''}"
    peers = report.get("peers", {})
    versions = ", ".join(f"{name} {r['version']}" for name, r in peers.items() if r.get("version"))
    lines = [
        f"offload bench @ {commit}: python {report['python']}, django {report['django']}, "
        f"django-tasks-db {report['peer_version']}{', ' + versions if versions else ''}, "
        f"{report['cpu_count']} CPUs",
        f"median of {params['repeat']}; best = offload / the fastest peer in this run "
        "(rates: higher is better; ms, CPU, MB: lower is better); limit = the database's own "
        "(tight-loop commits/s, paced INSERT+COMMIT ms)",
    ]
    labels = {f.key: f for f in FIGURES}
    notes = [f"{name}: {peer_note(r)}" for name, r in peers.items() if peer_note(r)]
    for result in report["databases"]:
        name = f"{result['database']}, CONN_MAX_AGE={result['conn_max_age']}"
        lines += ["", name]
        if result["status"] == "unreachable":
            lines.append("  skipped: cannot connect")
            notes.append(f"{name}: {result['error']}")
            continue
        if result["status"] == "error":
            notes.append(f"{name}: FAILED, {result['error']}")
        if not result.get("median"):
            lines.append("  no figures")
            continue
        columns = "".join(f" {name:>9}" for name in ("offload", "tasks-db", "huey-sq", "huey-rd",
                                                     "limit"))  # fmt: skip
        header = (f"  {'figure':<31} {'unit':<8}{columns} {'best':>6}  {'target':<16} "
                  f"{'judged':>8} verdict")  # fmt: skip
        lines += [header, "  " + "-" * (len(header) + 2)]
        for row in result["verdicts"]:
            figure = labels[row["key"]]
            values = " ".join(
                f"{shown(row[name], figure.digits):>9}"
                for name in ("offload", "peer", "huey_sqlite", "huey_redis", "limit")
            )
            lines.append(
                f"  {figure.label:<31} {figure.unit:<8} {values} {shown(row['ratio'], 2):>6}"
                f"  {row['target'] or '':<16} {shown(row['judged'], 2):>8} {row['verdict'] or ''}"
            )
        lines += plan_lines(result.get("plans"), full=full_plans)
        notes.extend(f"{name}: {problem}" for problem in result["problems"])
    verdict_list = [
        row["verdict"]
        for result in report["databases"]
        for row in result.get("verdicts", [])
        if row["verdict"]
    ]
    counts = ", ".join(f"{verdict_list.count(v)} {v}" for v in ("PASS", "MISS", "SKIP"))
    lines += ["", f"targets: {counts}"]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def plan_lines(found: dict[str, Any] | None, *, full: bool) -> list[str]:
    """Which index each kind of claim reads, and whether it sorts; with ``full``, every plan."""
    if not found:
        return []
    each = found["each_coordinated_kind"]
    lines = [f"  claim plans, {found['tasks']:,} plain tasks beside {each:,} keyed, "
             "rate-limited and workflow tasks each:"]  # fmt: skip
    for kind, plan in found["plans"].items():
        reads = ", ".join(dict.fromkeys(plan["indexes"])) or "no index"
        lines.append(f"    {kind:<12} reads {reads}{', SORTS' if plan['sorts'] else ''}")
        if full:
            lines += [f"      {line}" for line in plan["lines"]]
    return lines


def peer_note(result: dict[str, Any]) -> str | None:
    """Why a peer has no figures, or what went wrong while it was measured."""
    if result["status"] == "unreachable":
        return f"skipped, cannot connect: {result['error']}"
    problems = list(result.get("problems", []))
    if result["status"] == "error":
        problems.insert(0, f"FAILED, {result['error']}")
    return "; ".join(problems) or None


def plot(report: dict[str, Any], paths: Sequence[Path]) -> None:
    """Drain rates and caller's-clock latency of every system, per database and CONN_MAX_AGE.

    huey is measured once per run, so its bars are the same in every group.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["databases"] if r.get("median")]
    if not results:
        return
    names = [f"{r['database']}\nCMA={r['conn_max_age']}" for r in results]
    peers = {name: r["median"] for name, r in report.get("peers", {}).items() if r.get("median")}
    systems = [("offload", "offload"), ("peer", "django-tasks-db"),
               *((name, name.replace("_", " on ")) for name in peers)]  # fmt: skip
    panels = (
        ("w2_per_s", "W2 drain, 1 process x 1 thread (tasks/s)"),
        ("w3_per_s", "W3 drain, best concurrency (tasks/s)"),
        ("w4_caller_p50_ms", "W4 enqueue() to first line, p50 (ms, lower is better)"),
    )
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.4))
    width = 0.8 / len(systems)
    for axis, (key, title) in zip(axes, panels, strict=True):
        for number, (system, label) in enumerate(systems):
            values = [(peers.get(system) or r["median"].get(system) or {}).get(key) or 0
                      for r in results]  # fmt: skip
            shift = (number - (len(systems) - 1) / 2) * width
            bars = axis.bar([i + shift for i in range(len(results))], values, width, label=label)
            axis.bar_label(bars, fmt="%.0f" if key.endswith("per_s") else "%.1f", fontsize=6)
        axis.set_title(title, fontsize=9)
        axis.set_xticks(range(len(results)), names, fontsize=7)
        axis.set_yscale("log")
        axis.legend(fontsize=7)
    git = report["git"]
    figure.suptitle(
        f"offload and its peers (median of "
        f"{report['parameters']['repeat']}, {report['cpu_count']} CPUs, {git['commit']})",
        fontsize=10,
    )
    figure.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    plt.close(figure)
