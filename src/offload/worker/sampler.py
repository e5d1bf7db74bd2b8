"""The depth sampler: once a minute, one row per queue with its READY and
RUNNING counts and the age of its oldest due task, for the dashboard's chart.

Every supervisor runs a ``DepthSampler`` thread, but only the holder of the
``depth-sampler`` lease samples (an elected role, like the rescuer; see
``roles``). Two samplers in one minute (a lease that changed hands) still write
one row per queue: the table's unique (minute, queue) key skips the second.
Samples older than the dashboard's day window are pruned with each pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from offload.store import TaskStore, depth
from offload.worker.roles import ElectedRole

LEASE_NAME = "depth-sampler"
SAMPLE_SECONDS = 60
# Longer than two passes: one late pass does not hand the role over.
LEASE_SECONDS = SAMPLE_SECONDS * 2.5


class DepthSampler(ElectedRole):
    lease_name = LEASE_NAME
    label = "Queue depth sample"
    close_between_turns = True  # a pass a minute

    def __init__(self, alias: str, owner: str, queues: Iterable[str] = ()) -> None:
        super().__init__(alias, owner)
        self.queues = sorted(q for q in queues if isinstance(q, str))
        self.written = 0

    def lease_seconds(self) -> float:
        return LEASE_SECONDS

    def pause_seconds(self) -> float:
        # Early in the next minute: the passes fall one per minute.
        return SAMPLE_SECONDS - time.time() % SAMPLE_SECONDS + 1

    def sample(self) -> int:
        """If this supervisor holds the sampler role, sample and prune; return the rows written."""
        return self.turn()

    def work(self, store: TaskStore) -> int:
        minute, written = depth.sample(store, self.queues)
        depth.prune(store, minute - depth.KEPT_FOR)
        self.written += written
        return written
