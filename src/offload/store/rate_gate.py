"""Rate limits in the database: one lock per rate key, the gate of an
enqueue, and the promotion of blocked tasks as the window slides (see
``offload.rates``).

The rule kept, for one (backend, rate key) with a rate of ``count`` per
``period`` seconds: the key's READY tasks plus its tasks claimed within the
last ``period`` (by ``claimed_at``, the database's clock) are at most
``count``. A READY task is a start that may happen at any moment, and a
claimed one counts until its claim is older than the period, so no window of
``period`` seconds holds more than ``count`` claims of the key. The claim
stays as it is and never looks at keys: the rule is kept at the doors of
READY, as for concurrency limits (``store.gate``):

* An enqueue (and an operator's retry or run-again) of a rate-keyed task
  locks the key, counts its window and writes the task READY if there is
  room, else BLOCKED (in no queue; no claim reads it).
* A retry of a rate-keyed task (a failure that gets another attempt, a lease
  lost) goes BLOCKED, never straight to READY: its next claim would overwrite
  the ``claimed_at`` that counts its last start. The promotion lets a blocked
  task in only once its own last claim has left the window.
* Nothing ends a rate the way a final state ends a concurrency slot: time
  does. The worker's rate promoter (an elected role, ``worker.rate_promoter``)
  promotes for every key with blocked tasks, then sleeps until the oldest
  claim of a full window leaves it (``promote`` says when).

The lock is the row of (backend, key) in ``offload_rate_key``, written by
the same upsert as a concurrency key's (``gate.lock_key_sql``), so decisions
on a key never overlap on any engine. Only rate-keyed tasks pay for this: a
task without a rate key has NULL in ``rate_key``, and none of these
statements runs for it.
"""

from collections.abc import Sequence

from offload.states import State
from offload.store.base import TABLE
from offload.store.connection import atomic_on
from offload.store.gate import IS_BLOCKED, GateStore, KeyRef, lock_key_sql, make_ready_sql
from offload.store.vendor import Vendor, read_datetime

KEY_TABLE = "offload_rate_key"

# A task's claim counts in a window while it is in any state but READY (a
# READY one counts as READY, once) and its claimed_at is recent enough.
_CLAIMED = ", ".join(
    f"'{state.value}'"
    for state in (State.RUNNING, State.SUCCESSFUL, State.FAILED, State.CANCELLED, State.BLOCKED)
)

# Blocked tasks promoted per statement.
PROMOTE_BATCH = 100


def window_sql(vendor: Vendor, latest: bool = False) -> str:
    """The count of a key's window (parameters: backend, key, minus the
    period): its READY tasks and those claimed within the period. ``latest``:
    read past the snapshot the transaction may hold (see ``gate.GateStore``)."""
    return (
        f"SELECT COUNT(*) FROM {TABLE} WHERE backend = %s AND rate_key = %s "
        f"AND (status = '{State.READY.value}' OR (status IN ({_CLAIMED}) "
        f"AND claimed_at > {vendor.now_plus_seconds})){vendor.read_latest if latest else ''}"
    )


def oldest_claim_sql(vendor: Vendor) -> str:
    """The oldest claim within a key's window and the database's clock
    (parameters: backend, key, minus the period)."""
    return (
        f"SELECT MIN(claimed_at), {vendor.now} FROM {TABLE} WHERE backend = %s "
        f"AND rate_key = %s AND status IN ({_CLAIMED}) "
        f"AND claimed_at > {vendor.now_plus_seconds}"
    )


def head_sql(vendor: Vendor, latest: bool = False) -> str:
    """The rate of a key's first blocked task (parameters: backend, key)."""
    return (
        f"SELECT rate_count, rate_period FROM {TABLE} WHERE backend = %s AND rate_key = %s "
        f"AND {IS_BLOCKED} ORDER BY priority DESC, id LIMIT 1"
        f"{vendor.read_latest if latest else ''}"
    )


def promotable_sql(vendor: Vendor, latest: bool = False) -> str:
    """A key's first blocked tasks that are due and whose own last claim (if
    any) has left the window (parameters: backend, key, minus the period,
    how many)."""
    return (
        f"SELECT id, queue_name FROM {TABLE} WHERE backend = %s AND rate_key = %s "
        f"AND {IS_BLOCKED} AND available_at <= {vendor.now} "
        f"AND (claimed_at IS NULL OR claimed_at <= {vendor.now_plus_seconds}) "
        f"ORDER BY priority DESC, id LIMIT %s{vendor.read_latest if latest else ''}"
    )


class RateGateStore(GateStore):
    def lock_rate_key(self, backend: str, key: str) -> None:
        """Take the lock of one rate key until the transaction ends."""
        self._write(lock_key_sql(self.vendor, 1, KEY_TABLE), [backend, key])

    def window(self, backend: str, key: str, period: float, nested: bool = True) -> int:
        """How many of the key's tasks are READY or were claimed within ``period``."""
        sql = window_sql(self.vendor, nested)
        return int(self._fetch(sql, [backend, key, -period])[0][0])

    def rate_gate(self, backend: str, key: str, count: int, period: float, nested: bool) -> State:
        """Lock the key and say what a new task of it is: READY if its window
        has room, else BLOCKED. The caller writes the task in the same
        transaction (``nested``: one it had open before, see ``gate``)."""
        self.lock_rate_key(backend, key)
        return State.READY if self.window(backend, key, period, nested) < count else State.BLOCKED

    def promote_rate(self, backend: str, key: str) -> float | None:
        """Let in what the key's window has room for, in a transaction of its
        own; return the seconds until the oldest claim of its window leaves
        it, if tasks still wait (None: nothing waits, or no claim to wait for)."""
        queues: list[str] = []
        nested = self.connection.in_atomic_block
        with atomic_on(self.connection):
            self.lock_rate_key(backend, key)
            head = self._fetch(head_sql(self.vendor, nested), [backend, key])
            if not head:
                return None
            count, period = int(head[0][0] or 1), float(head[0][1] or 1.0)
            room = count - self.window(backend, key, period, nested)
            while room > 0:
                rows = self._fetch(
                    promotable_sql(self.vendor, nested),
                    [backend, key, -period, min(room, PROMOTE_BATCH)],
                )
                if not rows:
                    break
                ids = [int(row[0]) for row in rows]
                self._write(make_ready_sql(len(ids)), [State.READY, *ids])
                queues += [str(row[1]) for row in rows]
                room -= len(ids)
            waiting = room <= 0 and bool(self._fetch(head_sql(self.vendor, nested), [backend, key]))
        if queues:
            self.announcer.announce(self.connection, queues)
        return self._until_slot(backend, key, period) if waiting else None

    def _until_slot(self, backend: str, key: str, period: float) -> float | None:
        """Seconds until the oldest claim in the key's window leaves it."""
        oldest, now = self._fetch(oldest_claim_sql(self.vendor), [backend, key, -period])[0]
        first, clock = read_datetime(oldest), read_datetime(now)
        if first is None or clock is None:
            return None
        return max(0.0, (first - clock).total_seconds() + period)

    def rate_blocked_keys(self, limit: int) -> list[KeyRef]:
        """Up to ``limit`` rate keys that have BLOCKED tasks (see
        ``gate.keys_with_blocked_sql``)."""
        return self._keys_with_blocked(KEY_TABLE, "rate_key", limit)

    def rate_sweep(self, limit: int) -> tuple[int, float | None]:
        """Promote for up to ``limit`` rate keys with blocked tasks; return how
        many keys were looked at and the seconds until the soonest of their
        windows frees a slot (None: none known)."""
        soonest: float | None = None
        keys = self.rate_blocked_keys(limit)
        for backend, key in keys:
            wait = self.promote_rate(backend, key)
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
        return len(keys), soonest

    def rate_keys_of(self, task_ids: Sequence[int]) -> list[KeyRef]:
        """The rate keys of these tasks (those without one left out)."""
        return self._keys_of("rate_key", task_ids)
