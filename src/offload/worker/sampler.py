"""The depth sampler: once a minute, one row per queue with its READY and
RUNNING counts and the age of its oldest due task, for the dashboard's chart.

Every supervisor runs a ``DepthSampler`` thread, but only the holder of the
``depth-sampler`` lease samples, as with the rescuer (``rescue``): the holder
renews the lease with each sample, and if its host dies the lease lapses and
another supervisor takes the role at its next turn. Two samplers in one minute
(a lease that changed hands) still write one row per queue: the table's
unique (minute, queue) key skips the second. Samples older than the dashboard's
day window are pruned with each pass.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable

from django.db import DatabaseError, connections

from offload.store import TaskStore, depth

logger = logging.getLogger("offload.worker")

LEASE_NAME = "depth-sampler"
SAMPLE_SECONDS = 60
# Longer than two passes: one late pass does not hand the role over.
LEASE_SECONDS = SAMPLE_SECONDS * 2.5


class DepthSampler:
    def __init__(self, alias: str, owner: str, queues: Iterable[str] = ()) -> None:
        self.alias = alias
        self.owner = owner
        self.queues = sorted(q for q in queues if isinstance(q, str))
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offload-sampler", daemon=True)
        self._holding = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.sample()
                except DatabaseError:
                    logger.warning("Queue depth sample failed; trying again later", exc_info=True)
                except Exception:
                    logger.exception("Queue depth sample failed unexpectedly; trying again later")
                # A pass a minute does not need a connection held in between.
                with contextlib.suppress(DatabaseError):
                    connections[self.alias].close()
                # Early in the next minute: the passes fall one per minute.
                self._stop.wait(SAMPLE_SECONDS - time.time() % SAMPLE_SECONDS + 1)
            if self._holding:
                try:
                    TaskStore(self.alias).drop_lease(LEASE_NAME, self.owner)
                except DatabaseError:
                    logger.debug("Could not hand back the sampler lease", exc_info=True)
        finally:
            connections[self.alias].close()

    def sample(self) -> int:
        """If this supervisor holds the sampler role, sample and prune; return the rows written."""
        store = TaskStore(self.alias)
        self._holding = store.hold_lease(LEASE_NAME, self.owner, LEASE_SECONDS)
        if not self._holding:
            return 0
        minute, written = depth.sample(store, self.queues)
        depth.prune(store, minute - depth.KEPT_FOR)
        self.written += written
        return written
