"""The rate promoter: lets BLOCKED tasks of rate keys into their queues as
their windows slide (see ``offload.rates`` and ``store.rate_gate``).

Every supervisor runs a ``RatePromoter`` thread, but only the holder of the
``rate-promoter`` lease promotes (an elected role, like the rescuer; see
``roles``). Two holders in a row (a lease that changed hands) are safe: each
promotion locks its key's row, counts the window under the lock and promotes
only what it has room for.

A turn promotes for every rate key with blocked tasks, then sleeps until the
soonest moment one of their windows frees a slot (the oldest claim of a full
window plus its period, by the database's clock), or ``IDLE_SECONDS`` when no
such moment is known (no key waits, or its window is full of READY tasks not
claimed yet). So a slot is reused within milliseconds of freeing: the
precision is the promoter's wake-up (a thread's timer), one promotion's
round trips, and a worker's claim after the announcement. A task that
becomes BLOCKED while the promoter sleeps on no key (the first blocked task
of a key, a retry, a task due later) waits up to ``IDLE_SECONDS`` more.
"""

from __future__ import annotations

import time

from offload.store import TaskStore
from offload.worker.roles import ElectedRole

LEASE_NAME = "rate-promoter"
# The pause when no window is known to free a slot: how late the promoter
# may find a key's first blocked task.
IDLE_SECONDS = 0.5
# The least pause between turns, so a window that frees its slots one after
# the other does not spin the thread.
LEAST_SECONDS = 0.002
# Rate keys with blocked tasks looked at per turn.
KEY_BATCH = 100
# The lease, renewed every RENEW_SECONDS rather than at each turn (a turn may
# come every few milliseconds).
LEASE_SECONDS = 10.0
RENEW_SECONDS = 3.0


class RatePromoter(ElectedRole):
    lease_name = LEASE_NAME
    label = "Rate promotion"

    def __init__(self, alias: str, owner: str) -> None:
        super().__init__(alias, owner)
        self.promoted_keys = 0
        self._pause = IDLE_SECONDS
        self._renewed = 0.0

    def lease_seconds(self) -> float:
        return LEASE_SECONDS

    def pause_seconds(self) -> float:
        return self._pause

    def turn(self) -> int:
        store = TaskStore(self.alias)
        now = time.monotonic()
        if not self._holding or now - self._renewed >= RENEW_SECONDS:
            self._holding = store.hold_lease(self.lease_name, self.owner, self.lease_seconds())
            self._renewed = now
        if not self._holding:
            # Another supervisor promotes: ask for the lease again when its
            # holder would have renewed it, not at every idle pause (a write
            # twice a second from every worker of the project).
            self._pause = RENEW_SECONDS
            return 0
        return self.work(store)

    def work(self, store: TaskStore) -> int:
        looked, soonest = store.rate_sweep(KEY_BATCH)
        self.promoted_keys += looked
        if soonest is None:
            self._pause = IDLE_SECONDS
        else:
            self._pause = min(IDLE_SECONDS, max(LEAST_SECONDS, soonest))
        return looked
