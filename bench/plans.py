"""The claim's plan: an ordered index scan that stops after its rows, whatever else the table holds.

``bench.scale`` reads it on a table of a million rows; ``bench.run`` (the
``plans`` step) on a backlog that holds every kind of row the coordination
features add beside plain tasks: tasks blocked on a concurrency key and on a
rate key, and a workflow's members and its waiting callback. A claim that
sorts costs time in proportion to the backlog: tasks that use none of these
features must not pay for them. Each plan is read on a connection of the
worker's kind, with its session settings (on PostgreSQL, sorts priced out).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offload.store.tasks import TaskStore

TABLE = "offload_task"
CLAIM_LIMIT = 10

# The three claims a worker makes: sync tasks only (explain_claim's default),
# either kind (a worker with room for both), async tasks only.
CLAIM_KINDS: dict[str, bool | None] = {
    "sync tasks": False,
    "either kind": None,
    "async tasks": True,
}

# What a sort looks like in each engine's plan.
SORT_MARKS = {
    "postgresql": re.compile(r"\bSort\b"),  # Sort, Incremental Sort, Sort Key
    "sqlite": re.compile(r"TEMP B-TREE FOR .*ORDER BY"),
    "mysql": re.compile(r"filesort", re.IGNORECASE),
}


# Where each engine's plan names the index a scan reads.
INDEX_MARKS = {
    "postgresql": re.compile(
        r"(?:Index (?:Only )?Scan (?:Backward )?using|Bitmap Index Scan on) (\w+)"
    ),
    "sqlite": re.compile(r"USING (?:COVERING )?INDEX (\w+)"),
    # EXPLAIN's columns: id | select_type | table | type | possible_keys | key | ...
    "mysql": re.compile(r"^[^|]*\|[^|]*\| offload_task \|[^|]*\|[^|]*\| (\w+) \|"),
}


def read_plan(vendor: str, lines: list[str]) -> dict[str, Any]:
    """The plan's lines, whether it sorts, and the indexes it reads."""
    sorting = [line for line in lines if SORT_MARKS[vendor].search(line)]
    indexes = [found.group(1) for line in lines if (found := INDEX_MARKS[vendor].search(line))]
    return {"lines": lines, "sorts": bool(sorting), "sort_lines": sorting, "indexes": indexes}


def plan(store: TaskStore, is_async: bool | None) -> dict[str, Any]:
    """The claim's plan (``TaskStore.explain_claim``) for one kind of claim, read."""
    lines = store.explain_claim(is_async=is_async, limit=CLAIM_LIMIT)
    return read_plan(store.vendor.name, lines)


def worker_plans() -> dict[str, dict[str, Any]]:
    """Every kind of claim's plan, on a private connection like a worker's."""
    from offload.store.connection import open_private
    from offload.store.tasks import TaskStore

    store = TaskStore("default", connection=open_private("default"))
    try:
        return {kind: plan(store, is_async) for kind, is_async in CLAIM_KINDS.items()}
    finally:
        store.connection.close()


def sorting_claims(plans: dict[str, dict[str, Any]]) -> list[str]:
    """The claims that take tasks here (sync, either kind) whose plan sorts.

    Only sync tasks are enqueued, so an async-only claim finds none, and a
    planner that knows it may read the READY rows and sort the none it
    expects to keep (MariaDB, which has no partial index for it): shown, but
    not counted.
    """
    return [kind for kind, found in plans.items() if found["sorts"] and not CLAIM_KINDS[kind]]


def optimize(store: TaskStore) -> None:
    """Fresh statistics for the planner; on PostgreSQL also no dead row versions.

    VACUUM as well as ANALYZE on PostgreSQL: rows just updated leave dead
    versions whose index entries every claim would step over until
    autovacuum came by, which would make the figures depend on its timing.
    """
    with store.connection.cursor() as cursor:
        if store.vendor.name == "postgresql":
            cursor.execute(f"VACUUM (ANALYZE) {TABLE}")
        elif store.vendor.name == "mysql":
            cursor.execute(f"ANALYZE TABLE {TABLE}")
            cursor.fetchall()  # it answers with a result set, which must be read
        else:
            cursor.execute(f"ANALYZE {TABLE}")


def backlog_plans(tasks: int) -> dict[str, Any]:
    """The claim's plans on a backlog of ``tasks`` plain tasks beside every coordinated kind.

    A tenth as many again of each: tasks on concurrency keys (most
    ``BLOCKED``), on one rate key (most ``BLOCKED``), and a workflow's
    members with its ``WAITING`` callback. Statistics are fresh, as the
    planner would have them after autovacuum.
    """
    from django.db import transaction

    from bench.coordination import forget_coordination
    from bench.tasks import append_after, append_line
    from offload.store.tasks import TaskStore
    from offload.workflows import call, group

    extra = max(10, tasks // 10)
    with transaction.atomic():
        for index in range(tasks):
            append_line.enqueue("/dev/null", index)
        for index in range(extra):
            append_line.limited(f"plans-{index % 5}", limit=1).enqueue("/dev/null", index)
        limited = append_line.rate_limited("plans", (1, 3600.0))
        for index in range(extra):
            limited.enqueue("/dev/null", index)
        group(call(append_line, "/dev/null", n) for n in range(extra)).then(
            call(append_after, "/dev/null", -1)
        ).enqueue()
    optimize(TaskStore("default"))
    plans = worker_plans()
    forget_coordination()
    return {"tasks": tasks, "each_coordinated_kind": extra, "plans": plans,
            "sorting": sorting_claims(plans)}  # fmt: skip
