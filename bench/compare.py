"""Compare two commits' figures from alternated runs of ``bench.run``.

    python -m bench.compare --before b1.json b2.json b3.json --after a1.json a2.json a3.json
                            [--keys w2_per_s,w3_per_s]

Each JSON is one run (``--json``) of one commit; run the two commits in turn,
several times each, so that the machine's drift falls on both. For each
database and ``CONN_MAX_AGE``, and each figure, it prints the median over the
runs of each commit (each run's figure is itself the median of its repeats),
offload's change, and django-tasks-db's change, which neither commit touches:
how far the machine moved between the two sets of runs. See bench/README.md
("Do tasks that use none of it pay for it?").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SYSTEMS = ("offload", "peer")


def figures_by_setup(
    reports: Iterable[dict[str, Any]], keys: Sequence[str]
) -> dict[tuple[str, Any], dict[tuple[str, str], list[float]]]:
    """Every run's figure per (database, CONN_MAX_AGE), then per (system, key)."""
    found: dict[tuple[str, Any], dict[tuple[str, str], list[float]]] = {}
    for report in reports:
        for result in report["databases"]:
            setup = found.setdefault((result["database"], result["conn_max_age"]), {})
            for system in SYSTEMS:
                medians = (result.get("median") or {}).get(system) or {}
                for key in keys:
                    if medians.get(key) is not None:
                        setup.setdefault((system, key), []).append(medians[key])
    return found


def compare(
    before: Iterable[dict[str, Any]], after: Iterable[dict[str, Any]], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per setup, key and system: the medians of each side and the change in %."""
    old, new = figures_by_setup(before, keys), figures_by_setup(after, keys)
    rows = []
    for setup in sorted(set(old) & set(new), key=str):
        for key in keys:
            for system in SYSTEMS:
                was, now = old[setup].get((system, key)), new[setup].get((system, key))
                if not was or not now:
                    continue
                a, b = statistics.median(was), statistics.median(now)
                rows.append({
                    "database": setup[0], "conn_max_age": setup[1], "key": key,
                    "system": system, "before": a, "after": b, "runs": (len(was), len(now)),
                    "change_pct": 100 * (b - a) / a if a else None,
                })  # fmt: skip
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'database':<10} {'CMA':>4} {'figure':<10} {'system':<8} {'before':>10} "
             f"{'after':>10} {'change':>8} runs"]  # fmt: skip
    for row in rows:
        change = "-" if row["change_pct"] is None else f"{row['change_pct']:+.1f}%"
        label = "offload" if row["system"] == "offload" else "tasks-db"
        lines.append(
            f"{row['database']:<10} {row['conn_max_age']!s:>4} {row['key']:<10} {label:<8} "
            f"{row['before']:>10,.0f} {row['after']:>10,.0f} {change:>8} "
            f"{row['runs'][0]}/{row['runs'][1]}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--before", nargs="+", type=Path, required=True,
                        help="The JSON of each run of the commit before.")  # fmt: skip
    parser.add_argument("--after", nargs="+", type=Path, required=True,
                        help="The JSON of each run of the commit to judge.")  # fmt: skip
    parser.add_argument("--keys", default="w2_per_s,w3_per_s",
                        help="Comma-separated figures (bench.report's keys).")  # fmt: skip
    args = parser.parse_args(argv)
    keys = [key.strip() for key in args.keys.split(",") if key.strip()]
    before = [json.loads(path.read_text()) for path in args.before]
    after = [json.loads(path.read_text()) for path in args.after]
    rows = compare(before, after, keys)
    if not rows:
        print("no figure is in both sets of runs", file=sys.stderr)
        return 1
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
