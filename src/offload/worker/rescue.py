"""The rescue: tasks whose worker stopped renewing their lease go back to READY
(or to FAILED once their attempts are spent).

Every supervisor runs a ``Rescuer`` thread, but only the holder of the
``rescuer`` lease sweeps, so the statements are not repeated by every host; if
that host dies, its lease lapses and another supervisor takes the role at its
next turn. The sweep itself is safe to run twice: each write is fenced by the
task's attempt number and requires the lease to have expired by the database's
clock, so a heartbeat that lands first always wins.

A task process renews its leases every ``HEARTBEAT_SECONDS``; a lease lasts
``LEASE_SECONDS`` (at least two heartbeats). So a task is rescued at most
``LEASE_SECONDS + HEARTBEAT_SECONDS`` after its process last heartbeated, and a
task whose process keeps heartbeating is never rescued, however long it runs.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connections

from offload.conf import Options
from offload.exceptions import WorkerLost
from offload.failures import error_json
from offload.store import TaskStore

logger = logging.getLogger("offload.worker")

LEASE_NAME = "rescuer"
SWEEP_BATCH = 500  # expired leases handled per statement round; more wait for the next turn


class Rescuer:
    def __init__(self, alias: str, config: Options, owner: str) -> None:
        self.alias = alias
        self.config = config
        self.owner = owner
        self.rescued = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offload-rescuer", daemon=True)
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
                    self.sweep()
                except DatabaseError:
                    logger.warning("Rescue sweep failed; trying again later", exc_info=True)
                    connections[self.alias].close()
                self._stop.wait(self.config.heartbeat_seconds)
            if self._holding:
                try:
                    TaskStore(self.alias).drop_lease(LEASE_NAME, self.owner)
                except DatabaseError:
                    logger.debug("Could not hand back the rescuer lease", exc_info=True)
        finally:
            connections[self.alias].close()

    def sweep(self) -> int:
        """If this supervisor holds the rescuer role, rescue expired leases; return how many."""
        store = TaskStore(self.alias)
        self._holding = store.hold_lease(LEASE_NAME, self.owner, self.config.lease_seconds)
        if not self._holding:
            return 0
        rescued = 0
        for task_id, attempt, max_attempts, owner in store.expired_leases(SWEEP_BATCH):
            error = error_json(
                WorkerLost,
                f"worker {owner} stopped renewing its lease on attempt {attempt}",
                attempt=attempt,
                worker_id=owner,
            )
            delay = self.config.retry.delay_after(attempt)
            if store.attempt_lost(task_id, attempt, error, delay, expired_only=True):
                rescued += 1
                logger.warning(
                    "Rescued task %s from %s (attempt %d of %d): %s",
                    task_id, owner, attempt, max_attempts,
                    "FAILED" if attempt >= max_attempts else f"retry in {delay:.1f}s",
                )  # fmt: skip
        # Rows of workers that stopped without a word (killed with their host):
        # they are only for operators, and a live worker re-registers.
        store.forget_silent_workers(self.config.lease_seconds * 2)
        self.rescued += rescued
        return rescued
