"""The results, read: medians over repeats, offload's ratio to the peer, the targets, the plot.

Every ratio is offload's figure divided by django-tasks-db's, taken in the
same run on the same database: for rates higher is better, for latencies, CPU
and memory lower is. Absolute figures vary from machine to machine and run to
run; the ratios and the targets below are what a run is judged on.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    Figure("idle_cpu_pct", "W4 idle worker CPU", "% core", False, 2),
    Figure("w5_sync_pct", "W5 20 ms sleeps, sync", "% ideal", True),
    Figure("w5_async_pct", "W5 20 ms sleeps, async", "% ideal", True),
    # Async tasks at the worker's default slots, as a multiple of the best the
    # threads of the two rows above could do (threads x 50/s).
    Figure("w5_async_wide_x", "W5 async, 100 slots", "x threads", True, 1),
    Figure("w6_ratio", "W6 CPU-bound, 2 vs 1 process", "x", True, 2),
    Figure("rss_mb", "Peak RSS per worker process", "MB", False),
)


@dataclass(frozen=True)
class Target:
    """A figure's bar: ``on`` the ratio to the peer or on offload's own ``value``."""

    key: str
    on: str  # "ratio" or "value"
    op: str  # ">=" or "<" or "<="
    bound: float
    databases: tuple[str, ...] = ("sqlite", "postgres", "mariadb")

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        return value < self.bound

    @property
    def text(self) -> str:
        return f"{'ratio' if self.on == 'ratio' else ''} {self.op} {self.bound:g}".strip()


TARGETS = (
    Target("w1_per_s", "ratio", ">=", 2.5, ("sqlite",)),
    Target("w1_per_s", "ratio", ">=", 1.5, ("postgres",)),
    Target("bulk_per_s", "value", ">=", 20_000),
    Target("w2_per_s", "ratio", ">=", 10, ("sqlite", "postgres")),
    Target("w3_per_s", "ratio", ">=", 10),
    Target("w4_p50_ms", "value", "<", 2, ("postgres",)),
    Target("w4_p50_ms", "value", "<", 5, ("sqlite",)),
    Target("w4_p99_ms", "value", "<", 10),
    Target("idle_cpu_pct", "value", "<", 1),
    Target("w5_sync_pct", "value", ">=", 90),
    Target("w5_async_pct", "value", ">=", 90),
    # "Async tasks far beyond" the threads' ideal: at least five times it.
    Target("w5_async_wide_x", "value", ">=", 5),
    Target("w6_ratio", "value", ">=", 1.8),
    Target("rss_mb", "ratio", "<=", 1.2),
)


def target_for(key: str, database: str) -> Target | None:
    return next((t for t in TARGETS if t.key == key and database in t.databases), None)


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


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: both medians, the ratio, the target and PASS/MISS."""
    ours, theirs = result["median"]["offload"], result["median"]["peer"]
    rows = []
    for figure in FIGURES:
        target = target_for(figure.key, result["database"])
        found = ratio(ours[figure.key], theirs[figure.key])
        judged = None
        if target is not None:
            judged = target.met(found if target.on == "ratio" else ours[figure.key])
        rows.append({
            "key": figure.key, "offload": ours[figure.key], "peer": theirs[figure.key],
            "ratio": found, "target": target.text if target else None,
            "verdict": None if target is None else ("PASS" if judged else "MISS"),
        })  # fmt: skip
    return rows


def shown(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def format_table(report: dict[str, Any]) -> str:
    params = report["parameters"]
    git = report["git"]
    commit = f"{git['commit']}{' (dirty)' if git['dirty'] else ''}"
    lines = [
        f"offload bench @ {commit}: python {report['python']}, django {report['django']}, "
        f"django-tasks-db {report['peer_version']}, {report['cpu_count']} CPUs",
        f"median of {params['repeat']}; ratio = offload / django-tasks-db "
        "(rates: higher is better; ms, CPU, MB: lower is better)",
    ]
    labels = {f.key: f for f in FIGURES}
    notes: list[str] = []
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
        header = f"  {'figure':<31} {'unit':<8} {'offload':>9} {'tasks-db':>9} {'ratio':>8}"
        lines += [header + f"  {'target':<14} verdict", "  " + "-" * (len(header) + 20)]
        for row in result["verdicts"]:
            figure = labels[row["key"]]
            lines.append(
                f"  {figure.label:<31} {figure.unit:<8} {shown(row['offload'], figure.digits):>9} "
                f"{shown(row['peer'], figure.digits):>9} {shown(row['ratio'], 2):>8}"
                f"  {row['target'] or '':<14} {row['verdict'] or ''}"
            )
        notes.extend(f"{name}: {problem}" for problem in result["problems"])
    verdict_list = [
        row["verdict"]
        for result in report["databases"]
        for row in result.get("verdicts", [])
        if row["verdict"]
    ]
    lines += [
        "",
        f"targets: {verdict_list.count('PASS')} PASS, {verdict_list.count('MISS')} MISS",
    ]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def plot(report: dict[str, Any], paths: Sequence[Path]) -> None:
    """Drain rates and latency of both systems, per database and CONN_MAX_AGE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["databases"] if r.get("median")]
    if not results:
        return
    names = [f"{r['database']}\nCMA={r['conn_max_age']}" for r in results]
    panels = (
        ("w2_per_s", "W2 drain, 1 process x 1 thread (tasks/s)"),
        ("w3_per_s", "W3 drain, best concurrency (tasks/s)"),
        ("w4_p50_ms", "W4 latency p50 at 20 tasks/s (ms, lower is better)"),
    )
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    width = 0.38
    for axis, (key, title) in zip(axes, panels, strict=True):
        for shift, system, label in ((-width / 2, "offload", "offload"),
                                     (width / 2, "peer", "django-tasks-db")):  # fmt: skip
            values = [r["median"][system][key] or 0 for r in results]
            bars = axis.bar([i + shift for i in range(len(results))], values, width, label=label)
            axis.bar_label(bars, fmt="%.0f" if key != "w4_p50_ms" else "%.1f", fontsize=7)
        axis.set_title(title, fontsize=9)
        axis.set_xticks(range(len(results)), names, fontsize=7)
        axis.set_yscale("log")
        axis.legend(fontsize=7)
    git = report["git"]
    figure.suptitle(
        f"offload vs django-tasks-db {report['peer_version']} (median of "
        f"{report['parameters']['repeat']}, {report['cpu_count']} CPUs, {git['commit']})",
        fontsize=10,
    )
    figure.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    plt.close(figure)
