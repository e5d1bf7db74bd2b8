"""The targets: each a bar for one of offload's figures on some databases, and how it is judged.

A target is judged on one of:

* ``value``: offload's own figure;
* ``ratio``: offload's figure over django-tasks-db's, same run, same database;
* ``huey_sqlite``, ``huey_redis``: offload's figure over that huey's, same run;
* ``limit``: offload's figure over the database's own limit (``bench.db_limits``:
  the tight loop's commits per second for a rate, the paced round trip for a
  latency), same run, same database;
* ``limit_gap``: offload's figure minus that limit (ms over the bare round trip).

Pure functions only, so that tests/unit can check them without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ALL = ("sqlite", "postgres", "mariadb")
PEERS = ("peer", "huey_sqlite", "huey_redis")
PEER_LABELS = {"peer": "tasks-db", "huey_sqlite": "huey-sq", "huey_redis": "huey-rd"}
# Which database limit each figure is read against (bench.db_limits' medians).
LIMIT_OF = {
    "w1_per_s": "commit_per_s",
    "w4_caller_p50_ms": "commit_p50_ms",
    "w4_caller_p95_ms": "commit_p95_ms",
    "w4_caller_p99_ms": "commit_p99_ms",
}


@dataclass(frozen=True)
class Target:
    key: str
    on: str  # "value", "ratio", "huey_sqlite", "huey_redis", "limit" or "limit_gap"
    op: str  # ">=" or "<" or "<="
    bound: float
    databases: tuple[str, ...] = ALL

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
        prefix = {
            "value": "",
            "ratio": "/tasks-db ",
            "huey_sqlite": "/huey-sq ",
            "huey_redis": "/huey-rd ",
            "limit": "/limit ",
            "limit_gap": "-limit ",
        }[self.on]
        return f"{prefix}{self.op} {self.bound:g}"


TARGETS = (
    Target("w1_per_s", "ratio", ">=", 2.5, ("sqlite",)),
    Target("w1_per_s", "ratio", ">=", 1.5, ("postgres",)),
    # Issue 23: at least huey's enqueue through the same file system and pragmas,
    # and within 2x of what the database commits one by one at best.
    Target("w1_per_s", "huey_sqlite", ">=", 1, ("sqlite",)),
    Target("w1_per_s", "limit", ">=", 0.5),
    Target("bulk_per_s", "value", ">=", 20_000),
    Target("w2_per_s", "ratio", ">=", 10, ("sqlite", "postgres")),
    Target("w3_per_s", "ratio", ">=", 10),
    Target("w3_per_s", "huey_redis", ">=", 1, ("sqlite", "postgres")),
    Target("w4_p50_ms", "value", "<", 2, ("postgres",)),
    Target("w4_p50_ms", "value", "<", 5, ("sqlite",)),
    Target("w4_p99_ms", "value", "<", 10),
    # Issue 23, on the caller's clock: below a Redis queue on SQLite; on
    # PostgreSQL within 1 ms of the bare INSERT + COMMIT; p99 under 10 ms.
    Target("w4_caller_p50_ms", "huey_redis", "<", 1, ("sqlite",)),
    Target("w4_caller_p50_ms", "limit_gap", "<=", 1, ("postgres",)),
    Target("w4_caller_p99_ms", "value", "<", 10),
    Target("idle_cpu_pct", "value", "<", 1),
    Target("w5_sync_pct", "value", ">=", 90),
    Target("w5_async_pct", "value", ">=", 90),
    # "Async tasks far beyond" the threads' ideal: at least five times it.
    Target("w5_async_wide_x", "value", ">=", 5),
    Target("w6_ratio", "value", ">=", 1.8),
    Target("rss_mb", "ratio", "<=", 1.2),
    # Issue 23: enqueues and a worker at once keep 80% of each alone.
    Target("w7_enqueue_pct_w1", "value", ">=", 80),
    Target("w7_drain_pct_w3", "value", ">=", 80),
    # Issue 22: a key never has more tasks held (claimed to finished) than
    # its limit; a rate key's tasks start at its rate, not above it (+2%:
    # the hand-off from claim to start varies) and not far below; no 1 s
    # window holds more claims than the rate (exact, on the database's clock).
    Target("w8_over_limit", "value", "<=", 0),
    Target("w9_start_rate_pct", "value", "<=", 102),
    Target("w9_start_rate_pct", "value", ">=", 90),
    Target("w9_most_claims_pct", "value", "<=", 100),
    # Tasks that use none of it keep their claim an ordered index scan.
    Target("plan_sorts", "value", "<=", 0),
)


def targets_for(key: str, database: str) -> list[Target]:
    return [t for t in TARGETS if t.key == key and database in t.databases]


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def judged_value(
    target: Target,
    figures: Mapping[str, Mapping[str, float | None]],
    limits: Mapping[str, float | None],
) -> float | None:
    """What ``target`` is judged on; None where a figure it needs is missing.

    ``figures`` maps each system ("offload", "peer", "huey_sqlite",
    "huey_redis") to its medians; ``limits`` holds the database's.
    """
    ours = figures.get("offload", {}).get(target.key)
    if target.on == "value":
        return ours
    if target.on == "ratio":
        return ratio(ours, figures.get("peer", {}).get(target.key))
    if target.on in ("huey_sqlite", "huey_redis"):
        return ratio(ours, figures.get(target.on, {}).get(target.key))
    limit = limits.get(LIMIT_OF.get(target.key, ""))
    if target.on == "limit":
        return ratio(ours, limit)
    if ours is None or limit is None:
        return None
    return ours - limit  # limit_gap


def verdict(target: Target, value: float | None) -> str:
    """PASS or MISS; SKIP where the peer or limit compared with was not measured."""
    if value is None and target.on not in ("value", "ratio"):
        return "SKIP"
    return "PASS" if target.met(value) else "MISS"


def fastest_peer(
    key: str,
    figures: Mapping[str, Mapping[str, float | None]],
    higher_is_better: bool,
) -> tuple[str | None, float | None]:
    """The peer with the best figure for ``key`` in this run, and that figure."""
    found = [
        (name, figures[name][key])
        for name in PEERS
        if name in figures and figures[name].get(key) is not None
    ]
    if not found:
        return None, None
    pick = max if higher_is_better else min
    return pick(found, key=lambda item: item[1] or 0)
