"""Concurrency limits in the database: one lock per key, the gate of an
enqueue, and the promotion of blocked tasks (see ``offload.concurrency``).

The rule kept: at most ``limit`` tasks of one (backend, concurrency key) are
*holders*, READY or RUNNING. The claim stays as it is and never looks at keys:
a READY task may be claimed at once, so the limit is kept at the doors of
READY instead:

* An enqueue (and an operator's retry or run-again) of a keyed task locks the
  key, counts its holders and writes the task READY if there is room, else
  BLOCKED. A BLOCKED task is in no queue: no claim reads it, no worker polls
  for it.
* Every write that takes a keyed task out of the holders (a final state: a
  success, a final failure, a cancellation, a rescue that gives up, a delete)
  locks the key first and, in the same transaction, *promotes*: counts the
  holders again and makes the oldest BLOCKED tasks READY, in priority order,
  while there is room, announcing their queues so an idle worker wakes.
* Moves between READY and RUNNING (a claim, a retry with backoff, a release)
  change no count: a task keeps its slot until it ends.

The lock is the row of (backend, key) in ``offload_concurrency_key``, written
by an upsert as the first statement of the transaction: PostgreSQL and
MariaDB hold its row lock until the transaction ends, and on SQLite the first
write takes the database's write lock. So every decision on a key sees the
one before it, on every engine, and never two at once. Keys are locked in
sorted order, so two transactions that lock several never wait on each other
in a circle.

Only keyed tasks pay for this: a task without a key has NULL in
``concurrency_key``, and none of these statements runs for it. The rescuer's
sweep (``sweep``) promotes for every key that has blocked tasks, so a limit
raised in code, or a release lost with its process, heals within one turn.
"""

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from offload.states import State
from offload.store.base import TABLE, StoreBase
from offload.store.connection import atomic_on
from offload.store.vendor import Vendor

KEY_TABLE = "offload_concurrency_key"

# A concurrency key as the store names it: (backend, key).
KeyRef = tuple[str, str]

# The holders of a key, as the partial index offload_task_key_holders_idx
# states them (constants, so SQLite matches the index's condition).
HOLDING = f"status IN ('{State.READY.value}', '{State.RUNNING.value}')"
IS_BLOCKED = f"status = '{State.BLOCKED.value}'"

# Blocked tasks read per round of a promotion.
PROMOTE_BATCH = 100
# Keys locked, or looked up, per statement: a batch of outcomes of keyed
# tasks costs a few statements, not a few per task.
KEYS_PER_STATEMENT = 100


def lock_key_sql(vendor: Vendor, count: int = 1, table: str = KEY_TABLE) -> str:
    """The upsert that takes the lock of ``count`` keys of ``table``, in the
    order given (parameters: backend and key of each): each engine writes the
    rows of a multi-row INSERT one after the other."""
    touch = vendor.touch_on_conflict.format(keys="backend, name", column="taken_at")
    rows = ", ".join([f"(%s, %s, {vendor.now})"] * count)
    return f"INSERT INTO {table} (backend, name, taken_at) VALUES {rows} {touch}"


def with_blocked_sql(vendor: Vendor, count: int, latest: bool = False) -> str:
    """Which of ``count`` keys of one backend have blocked tasks (parameters:
    the backend, then the keys)."""
    return (
        f"SELECT DISTINCT concurrency_key FROM {TABLE} WHERE backend = %s "
        f"AND concurrency_key IN ({', '.join(['%s'] * count)}) AND {IS_BLOCKED}"
        f"{vendor.read_latest if latest else ''}"
    )


def holders_sql(vendor: Vendor, latest: bool = False) -> str:
    """The count of a key's holders (parameters: backend, key). ``latest``:
    read past the snapshot the transaction may hold (see ``GateStore``)."""
    return (
        f"SELECT COUNT(*) FROM {TABLE} WHERE backend = %s AND concurrency_key = %s "
        f"AND {HOLDING}{vendor.read_latest if latest else ''}"
    )


def blocked_sql(vendor: Vendor, latest: bool = False) -> str:
    """A key's oldest blocked tasks (parameters: backend, key, how many)."""
    return (
        f"SELECT id, concurrency_limit, queue_name FROM {TABLE} "
        f"WHERE backend = %s AND concurrency_key = %s AND {IS_BLOCKED} "
        f"ORDER BY priority DESC, id LIMIT %s{vendor.read_latest if latest else ''}"
    )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def keys_with_blocked_sql(key_table: str, column: str) -> str:
    """Up to %s keys of ``key_table`` whose tasks (by ``column``) include a
    BLOCKED one. Read from the keys' own table, each probed through the
    blocked index's (backend, key) prefix, not from the task table by status:
    MariaDB's blocked indexes are not partial, and a read by status there
    would scan every task at each turn. A project that never used a key has
    no rows there, and the read costs nothing."""
    return (
        f"SELECT k.backend, k.name FROM {key_table} k WHERE EXISTS "
        f"(SELECT 1 FROM {TABLE} t WHERE t.backend = k.backend "
        f"AND t.{column} = k.name AND t.{IS_BLOCKED}) LIMIT %s"
    )


def keys_of_sql(column: str, count: int) -> str:
    """The distinct (backend, key) in ``column`` of ``count`` task ids."""
    return (
        f"SELECT DISTINCT backend, {column} FROM {TABLE} "
        f"WHERE id IN ({', '.join(['%s'] * count)}) AND {column} IS NOT NULL"
    )


def make_ready_sql(count: int) -> str:
    """The promotion of ``count`` blocked tasks by id (parameters: READY,
    then the ids); a task no longer BLOCKED is left as it is."""
    return (
        f"UPDATE {TABLE} SET status = %s WHERE id IN ({', '.join(['%s'] * count)}) AND {IS_BLOCKED}"
    )


class GateStore(StoreBase):
    # The reads under a key's lock must see everything committed before the
    # lock was taken. On PostgreSQL (READ COMMITTED), SQLite (one writer) and
    # MariaDB at Django's default READ COMMITTED every read does. At
    # REPEATABLE READ, InnoDB reads the snapshot of the transaction's first
    # plain read: in a transaction the gate began, that read comes after the
    # lock, so a plain read is enough; in one the caller had open before
    # (``nested``), the snapshot may be older, and the reads end in
    # ``vendor.read_latest`` (a locking read, whose gap locks could make other
    # inserts wait: hence only there).

    def lock_keys(self, keys: Iterable[KeyRef]) -> list[KeyRef]:
        """Take the lock of each key, in sorted order (one statement per
        ``KEYS_PER_STATEMENT``); return them in that order."""
        ordered = sorted(set(keys))
        for start in range(0, len(ordered), KEYS_PER_STATEMENT):
            chunk = ordered[start : start + KEYS_PER_STATEMENT]
            params = [part for ref in chunk for part in ref]
            self._write(lock_key_sql(self.vendor, len(chunk)), params)
        return ordered

    def _with_blocked(self, keys: Sequence[KeyRef], nested: bool) -> list[KeyRef]:
        """Those of ``keys`` that have blocked tasks: the only ones a promotion
        has anything to do for (one read per backend and chunk of keys)."""
        by_backend: dict[str, list[str]] = {}
        for backend, key in keys:
            by_backend.setdefault(backend, []).append(key)
        found = []
        for backend, names in by_backend.items():
            for start in range(0, len(names), KEYS_PER_STATEMENT):
                chunk = names[start : start + KEYS_PER_STATEMENT]
                sql = with_blocked_sql(self.vendor, len(chunk), nested)
                found += [(backend, str(row[0])) for row in self._fetch(sql, [backend, *chunk])]
        return sorted(found)

    def holders(self, backend: str, key: str, nested: bool = True) -> int:
        """How many tasks of the key are READY or RUNNING."""
        return int(self._fetch(holders_sql(self.vendor, nested), [backend, key])[0][0])

    def gate(self, backend: str, key: str, limit: int, nested: bool) -> State:
        """Lock the key and say what a new task of it is: READY if the key has
        room, else BLOCKED. The caller writes the task in the same transaction
        (``nested``: one it had open before, see above)."""
        self.lock_keys([(backend, key)])
        holding = self.holders(backend, key, nested)
        return State.READY if holding < limit else State.BLOCKED

    def _promote(self, backend: str, key: str, nested: bool) -> list[str]:
        """Make the key's oldest BLOCKED tasks READY while it has room (its lock
        held); return the queues of the tasks promoted."""
        holding = self.holders(backend, key, nested)
        queues: list[str] = []
        while True:
            rows = self._fetch(blocked_sql(self.vendor, nested), [backend, key, PROMOTE_BATCH])
            taken = []
            for task_id, limit, queue in rows:
                # Each blocked task brings its own limit: the head waits for
                # room under its limit, and those behind it wait for the head.
                if holding >= (limit or 1):
                    break
                taken.append(int(task_id))
                queues.append(str(queue))
                holding += 1
            if taken:
                self._write(make_ready_sql(len(taken)), [State.READY, *taken])
            if len(taken) < PROMOTE_BATCH:
                return queues

    @contextlib.contextmanager
    def releasing(self, keys: Iterable[KeyRef]) -> Iterator[None]:
        """A transaction for a write that may take tasks of ``keys`` out of
        their holders: the keys are locked before it, and their blocked tasks
        promoted after it, before the commit. With no keys, nothing at all."""
        wanted = sorted(set(keys))
        if not wanted:
            yield
            return
        queues: list[str] = []
        nested = self.connection.in_atomic_block
        with atomic_on(self.connection):
            self.lock_keys(wanted)
            yield
            for backend, key in self._with_blocked(wanted, nested):
                queues += self._promote(backend, key, nested)
        if queues:
            self.announcer.announce(self.connection, queues)

    def rebalance(self, keys: Iterable[KeyRef]) -> None:
        """Promote what the keys have room for: idempotent, for any caller."""
        with self.releasing(keys):
            pass

    def keys_of(self, task_ids: Sequence[int]) -> list[KeyRef]:
        """The concurrency keys of these tasks (those without one left out)."""
        return self._keys_of("concurrency_key", task_ids)

    def _keys_of(self, column: str, task_ids: Sequence[int]) -> list[KeyRef]:
        if not task_ids:
            return []
        rows = self._fetch(keys_of_sql(column, len(task_ids)), list(task_ids))
        return [(str(backend), str(key)) for backend, key in rows]

    def _keys_with_blocked(self, key_table: str, column: str, limit: int) -> list[KeyRef]:
        rows = self._fetch(keys_with_blocked_sql(key_table, column), [limit])
        return [(str(backend), str(key)) for backend, key in rows]

    def blocked_keys(self, limit: int) -> list[KeyRef]:
        """Up to ``limit`` concurrency keys that have BLOCKED tasks (see
        ``keys_with_blocked_sql``)."""
        return self._keys_with_blocked(KEY_TABLE, "concurrency_key", limit)

    def sweep(self, limit: int) -> int:
        """Promote for up to ``limit`` keys that have blocked tasks, each in a
        transaction of its own; return how many keys were looked at."""
        keys = self.blocked_keys(limit)
        for key in keys:
            self.rebalance([key])
        return len(keys)
