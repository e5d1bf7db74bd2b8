"""The claim stays an ordered index scan with a large backlog and a long history.

A plan that sorts would cost each claim time in proportion to the READY rows,
which is what a backlog is full of; these tests read the database's own plan.
"""

import pytest
from django.db import connection

from offload.store import QueueFilter, TaskStore
from offload.store.connection import open_private
from offload.store.tasks import TABLE

READY, FINISHED = 20_000, 20_000


def _fill() -> None:
    """READY rows over two queues and two priorities, as many SUCCESSFUL ones."""
    with connection.cursor() as cursor:
        _insert(
            cursor,
            READY + FINISHED,
            f"CASE WHEN n <= {FINISHED} THEN 'SUCCESSFUL' ELSE 'READY' END",
        )
        _analyze(cursor)


def _insert(cursor, rows: int, status: str) -> None:
    """``rows`` tasks over two queues and two priorities; ``status`` is SQL of ``n``, 1 to rows."""
    now = {"postgresql": "now()", "sqlite": "CURRENT_TIMESTAMP", "mysql": "NOW(6)"}[
        connection.vendor
    ]
    json_list = "'[]'" if connection.vendor != "postgresql" else "'[]'::jsonb"
    json_dict = "'{}'" if connection.vendor != "postgresql" else "'{}'::jsonb"
    if connection.vendor == "mysql":  # MariaDB stops a recursive CTE at 1,000 rows
        cursor.execute("SET SESSION max_recursive_iterations = %s", [rows])
    cursor.execute(
        "INSERT INTO " + TABLE + " (task_path, backend, queue_name, priority, status,"
        " available_at, enqueued_at, attempt, worker_ids, args, kwargs, errors, is_async,"
        " max_attempts)"
        " WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %s)"
        " SELECT 'tests.app.tasks.noop', 'default',"
        " CASE WHEN n %% 3 = 0 THEN 'emails' ELSE 'default' END,"
        f" CASE WHEN n %% 7 = 0 THEN 10 ELSE 0 END, {status},"
        f" {now}, {now}, 1, {json_list}, {json_list}, {json_dict}, {json_list}, %s, 3"
        " FROM seq",
        [rows, False],
    )


def _analyze(cursor) -> None:
    """Fresh statistics, so the planner sees the table as filled."""
    cursor.execute({"postgresql": f"ANALYZE {TABLE}", "sqlite": "ANALYZE",
                    "mysql": f"ANALYZE TABLE {TABLE}"}[connection.vendor])  # fmt: skip
    if connection.vendor == "mysql":
        cursor.fetchall()


def _sorts(plan: list[str]) -> bool:
    text = "\n".join(plan)
    return {
        "postgresql": "Sort" in text,
        "sqlite": "TEMP B-TREE" in text,
        "mysql": "filesort" in text,
    }[connection.vendor]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "queues",
    [QueueFilter(), QueueFilter(("default",)), QueueFilter(("default", "emails"))],
    ids=["all queues", "one queue", "two queues"],
)
def test_the_claim_reads_an_index_in_claim_order(queues):
    _fill()
    plan = TaskStore("default").explain_claim(queues)
    assert "offload_task_claim" in "\n".join(plan), plan
    assert not _sorts(plan), plan


@pytest.mark.django_db(transaction=True)
def test_the_workers_claim_reads_the_index_with_statistics_older_than_the_backlog():
    """A table analyzed while READY rows were rare and finished ones spread
    over every page, a purge that frees room in each page, then a burst of
    enqueues that lands in that room before the next ANALYZE. The planner
    expects a handful of READY rows scattered over the table; on PostgreSQL
    it then reads them all with a bitmap scan and sorts them, for every
    claim. The claim a worker makes on its own connection must still read
    the index in claim order."""
    with connection.cursor() as cursor:
        _insert(cursor, READY + FINISHED, "CASE WHEN n %% 2 = 0 THEN 'SUCCESSFUL' "
                "WHEN n %% 1001 = 0 THEN 'READY' ELSE 'FAILED' END")  # fmt: skip
        _analyze(cursor)
        cursor.execute(f"DELETE FROM {TABLE} WHERE status = 'FAILED'")
        if connection.vendor == "postgresql":
            cursor.execute(f"VACUUM {TABLE}")  # the room freed is reused, ANALYZE is not rerun
        _insert(cursor, READY, "'READY'")
    if connection.vendor == "postgresql":
        shared = TaskStore("default").explain_claim(is_async=None)
        assert _sorts(shared), (
            "the planner no longer sorts in this case on a connection of its defaults; "
            f"this test needs another one to show the worker's settings matter: {shared}"
        )
    private = open_private("default")
    try:
        plan = TaskStore("default", connection=private).explain_claim(is_async=None)
    finally:
        private.close()
    assert "offload_task_claim" in "\n".join(plan), plan
    assert not _sorts(plan), plan


@pytest.mark.django_db(transaction=True)
def test_a_claim_of_async_tasks_alone_reads_their_own_index():
    """A worker with full threads claims async tasks only; a sync backlog must
    not make that claim read and sort every ready row."""
    if connection.vendor == "mysql":
        pytest.skip("MariaDB has no partial indexes: this claim reads past the sync backlog")
    _fill()
    plan = TaskStore("default").explain_claim(is_async=True)
    assert "offload_task_async_claim_idx" in "\n".join(plan), plan
    assert not _sorts(plan), plan


@pytest.mark.django_db(transaction=True)
def test_the_rescue_reads_only_running_tasks():
    """The search for expired leases reads the running tasks, not the backlog
    or the history: through the partial index of running leases, in lease
    order, where the engine has partial indexes; on MariaDB through the claim
    indexes, whose first column is the status."""
    _fill()
    with connection.cursor() as cursor:
        # Some running tasks, as a busy cluster has, with leases a second apart.
        expiry = {
            "postgresql": "now() + id * interval '1 second'",
            "sqlite": "datetime('now', '+' || id || ' seconds')",
            "mysql": "NOW(6) + INTERVAL id SECOND",
        }[connection.vendor]
        cursor.execute(
            f"UPDATE {TABLE} SET status = 'RUNNING', lease_owner = 'w', "
            f"lease_expires_at = {expiry} WHERE status = 'READY' AND id %% 10 = 0",
            [],
        )
        _analyze(cursor)
    plan = TaskStore("default").explain_rescue()
    text = "\n".join(plan)
    if connection.vendor == "mysql":
        assert "offload_task_claim" in text, plan
        return
    assert "offload_task_running_lease_idx" in text, plan
    assert not _sorts(plan), plan


@pytest.mark.django_db(transaction=True)
def test_the_rescuers_walk_of_waiting_tasks_reads_only_waiting_tasks():
    """The rescuer's recount of waiting workflow tasks (store.dependencies)
    walks them in id order from where it stopped: on a worker's connection,
    which does not sort on PostgreSQL, through the partial index of waiting
    tasks; on MariaDB through the claim indexes, sorting only what it read."""
    _fill()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET status = 'WAITING' WHERE id %% 100 = 0", [])
        _analyze(cursor)
    private = open_private("default")
    try:
        plan = TaskStore("default", connection=private).explain_waiting_sweep()
    finally:
        private.close()
    text = "\n".join(plan)
    if connection.vendor == "mysql":
        assert "offload_task_claim" in text, plan
        return
    assert "offload_task_waiting_idx" in text, plan
    assert not _sorts(plan), plan
