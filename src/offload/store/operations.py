"""What an operator does to tasks by hand: retry, run again as a copy, delete, pause.

Like the rest of ``store``, these are plain SQL through Django's connection, one
statement per batch of ids, and they test the status in the statement itself:
a task that changed state since the operator looked is left alone rather than
overwritten. Cancelling is ``TaskStore.cancel``.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from offload.states import State
from offload.store.base import TABLE
from offload.store.connection import atomic_on
from offload.store.dependencies import DEPENDENCY_TABLE
from offload.store.tasks import TaskStore
from offload.store.vendor import read_datetime

QUEUE_TABLE = "offload_queue"
# Ids per statement: well under every engine's limit on parameters.
BATCH_SIZE = 500

RETRYABLE = (State.FAILED, State.CANCELLED)

# A task made ready by hand: READY, or BLOCKED if it has a concurrency key or
# a rate key, for the key's promotion to let in (two parameters: READY, BLOCKED).
_READY_OR_BLOCKED = "CASE WHEN concurrency_key IS NULL AND rate_key IS NULL THEN %s ELSE %s END"


def batches(ids: Iterable[int], size: int = BATCH_SIZE) -> Iterator[list[int]]:
    """Split ``ids`` into lists of at most ``size``."""
    iterator = iter(ids)
    while batch := list(islice(iterator, size)):
        yield batch


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _announce(store: TaskStore, queues: Iterable[str]) -> None:
    # Tasks made READY by hand wake idle workers as an enqueue does (at commit).
    store.announcer.announce(store.connection, queues)


def _queues_of(store: TaskStore, ids: Sequence[int]) -> list[str]:
    with store.connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT queue_name FROM {TABLE} WHERE id IN ({_marks(ids)})", ids)
        return [str(row[0]) for row in cursor.fetchall()]


def retry(store: TaskStore, task_ids: Sequence[int]) -> int:
    """Make FAILED and CANCELLED tasks READY again, due now; return how many.

    The error history stays (the next failure is appended to it), and the task
    gets a fresh attempt budget of its original size: ``max_attempts`` becomes
    the attempts made so far plus the budget. ``attempt`` itself is never reset,
    because it is the fencing token: a worker still holding an old attempt must
    not be able to write over the new one.

    A task with a concurrency key or a rate key passes its key's gate as an
    enqueue does: it goes back BLOCKED, and the key's promotion (in the same
    transaction) lets it in if the key has room (see ``store.gate`` and
    ``store.rate_gate``).
    """
    if not task_ids:
        return 0
    vendor = store.vendor
    ids = list(task_ids)
    with store.releasing(store.keys_of(ids)), atomic_on(store.connection):
        with store.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET status = {_READY_OR_BLOCKED}, available_at = {vendor.now}, "
                "max_attempts = attempt + max_attempts, finished_at = NULL, "
                "return_value = NULL, cancel_requested_at = NULL, "
                "lease_owner = NULL, lease_expires_at = NULL "
                f"WHERE id IN ({_marks(ids)}) AND status IN (%s, %s)",
                [State.READY, State.BLOCKED, *ids, *RETRYABLE],
            )
            count = int(cursor.rowcount)
        _promote_rates(store, ids)
        if count:
            _announce(store, _queues_of(store, ids))
    return count


def _promote_rates(store: TaskStore, ids: Sequence[int]) -> None:
    """Let in the BLOCKED tasks of these tasks' rate keys that their windows
    have room for (see ``store.rate_gate``), in the caller's transaction."""
    for backend, key in store.rate_keys_of(ids):
        store.promote_rate(backend, key)


def run_again(store: TaskStore, task_ids: Sequence[int]) -> list[int]:
    """Enqueue a new READY copy of each task (same task, arguments, queue,
    priority, concurrency key and rate key), due now, whatever the original's
    state; return the new ids. A copy with a concurrency key or a rate key
    passes its key's gate as in ``retry``. A copy of a workflow task joins
    its workflow and receives the same upstream results (its upstreams have
    ended, or it runs without waiting for them)."""
    if not task_ids:
        return []
    vendor = store.vendor
    ids = list(task_ids)
    columns = (
        "task_path, backend, queue_name, priority, is_async, args, kwargs, max_attempts, "
        "timeout, concurrency_key, concurrency_limit, rate_key, rate_count, rate_period, "
        "workflow_id, upstream_results"
    )
    with store.releasing(store.keys_of(ids)), atomic_on(store.connection):
        with store.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {columns} FROM {TABLE} WHERE id IN ({_marks(ids)}) ORDER BY id", ids
            )
            originals = cursor.fetchall()
        new_ids: list[int] = []
        for row in originals:
            path, backend, queue, priority, is_async, args, kwargs, budget, timeout = row[1:10]
            key, limit, rate_key, rate_count, rate_period, workflow_id, upstream = row[10:]
            with store.connection.cursor() as cursor:
                # Attempts, errors and results start empty: the copy is a new
                # task that happens to share the original's call.
                cursor.execute(
                    f"INSERT INTO {TABLE} (task_path, backend, queue_name, priority, status, "
                    "is_async, run_after, available_at, enqueued_at, attempt, max_attempts, "
                    "timeout, worker_ids, args, kwargs, errors, concurrency_key, "
                    "concurrency_limit, rate_key, rate_count, rate_period, workflow_id, "
                    "upstream_results) "
                    "VALUES (%s, %s, %s, %s, %s, %s, "
                    f"NULL, {vendor.now}, {vendor.now}, 0, %s, %s, {vendor.json_param}, "
                    f"{vendor.json_param}, {vendor.json_param}, {vendor.json_param}, "
                    "%s, %s, %s, %s, %s, %s, %s) "
                    "RETURNING id",
                    [
                        path,
                        backend,
                        queue,
                        priority,
                        State.READY if key is None and rate_key is None else State.BLOCKED,
                        is_async,
                        budget,
                        timeout,
                        "[]",
                        _json_text(args),
                        _json_text(kwargs),
                        "[]",
                        key,
                        limit,
                        rate_key,
                        rate_count,
                        rate_period,
                        workflow_id,
                        upstream,
                    ],
                )
                new_ids.append(int(cursor.fetchone()[0]))
                if upstream is not None:
                    _copy_links(store, int(row[0]), new_ids[-1])
        _promote_rates(store, new_ids)
        _announce(store, (str(row[3]) for row in originals))
    return new_ids


def _copy_links(store: TaskStore, original: int, copy: int) -> None:
    """Give ``copy`` the upstreams of ``original``, whose results it receives."""
    store._write(
        f"INSERT INTO {DEPENDENCY_TABLE} (task_id, upstream_id, position) "
        f"SELECT %s, upstream_id, position FROM {DEPENDENCY_TABLE} WHERE task_id = %s",
        [copy, original],
    )


def delete(store: TaskStore, task_ids: Sequence[int]) -> int:
    """Delete tasks that are not RUNNING; return how many.

    A RUNNING task is left alone: cancel it first. (Its worker would find no
    row to complete, which is safe, but the operator would lose the outcome.)
    """
    if not task_ids:
        return 0
    ids = list(task_ids)
    # A READY task with a concurrency key frees its slot for a blocked one.
    with store.releasing(store.keys_of(ids)), store.connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {TABLE} WHERE id IN ({_marks(ids)}) AND status <> %s",
            [*ids, State.RUNNING],
        )
        return int(cursor.rowcount)


def pause_queue(store: TaskStore, name: str, by: str = "") -> None:
    """Stop workers claiming from queue ``name`` (tasks already RUNNING finish)."""
    vendor = store.vendor
    with atomic_on(store.connection), store.connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {QUEUE_TABLE} SET paused_at = {vendor.now}, paused_by = %s WHERE name = %s",
            [by, name],
        )
        if cursor.rowcount:
            return
        cursor.execute(
            f"INSERT INTO {QUEUE_TABLE} (name, paused_at, paused_by) VALUES (%s, {vendor.now}, %s)",
            [name, by],
        )


def resume_queue(store: TaskStore, name: str) -> None:
    """Let workers claim from queue ``name`` again."""
    with atomic_on(store.connection):
        with store.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {QUEUE_TABLE} WHERE name = %s", [name])
        _announce(store, [name])


def paused_queues(store: TaskStore) -> dict[str, datetime | None]:
    """The paused queues and when each was paused."""
    with store.connection.cursor() as cursor:
        cursor.execute(f"SELECT name, paused_at FROM {QUEUE_TABLE} WHERE paused_at IS NOT NULL")
        return {str(name): read_datetime(at) for name, at in cursor.fetchall()}


def _json_text(value: Any) -> str:
    # Drivers return JSON columns as text (SQLite, MariaDB) or decoded (psycopg).
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode()
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
