"""The rescue: tasks whose worker stopped renewing their lease go back to READY
(or to FAILED once their attempts are spent).

Every supervisor runs a ``Rescuer`` thread, but only the holder of the
``rescuer`` lease sweeps (an elected role, see ``roles``). The sweep itself is
safe to run twice: each write is fenced by the task's attempt number and
requires the lease to have expired by the database's clock, so a heartbeat that
lands first always wins.

A task process renews its leases every ``HEARTBEAT_SECONDS``; a lease lasts
``LEASE_SECONDS`` (at least two heartbeats). So a task is rescued at most
``LEASE_SECONDS + HEARTBEAT_SECONDS`` after its process last heartbeated, and a
task whose process keeps heartbeating is never rescued, however long it runs.

Each turn also promotes blocked tasks of every concurrency key that has room
(``TaskStore.sweep``): the safety net under the promotion each final state
does, for a limit raised in code or a promotion lost with its process.
"""

from __future__ import annotations

import logging

from offload.conf import Options
from offload.exceptions import WorkerLost
from offload.failures import cut_short
from offload.store import TaskStore
from offload.worker.roles import ElectedRole

logger = logging.getLogger("offload.worker")

LEASE_NAME = "rescuer"
SWEEP_BATCH = 500  # expired leases handled per statement round; more wait for the next turn
# Concurrency keys with blocked tasks looked at per turn (see store.gate.sweep).
# Waiting workflow tasks recounted per turn (see store.dependencies).
WAITING_SWEEP_BATCH = 100
KEY_SWEEP_BATCH = 100


class Rescuer(ElectedRole):
    lease_name = LEASE_NAME
    label = "Rescue sweep"

    def __init__(self, alias: str, config: Options, owner: str) -> None:
        super().__init__(alias, owner)
        self.config = config
        self.rescued = 0
        # Where the sweep of waiting workflow tasks goes on at the next turn.
        self.waiting_after = 0

    def lease_seconds(self) -> float:
        return self.config.lease_seconds

    def pause_seconds(self) -> float:
        return self.config.heartbeat_seconds

    def work(self, store: TaskStore) -> int:
        rescued = 0
        for task_id, attempt, max_attempts, owner, keys, dependents in store.expired_leases(
            SWEEP_BATCH
        ):
            # Whether its code started only its worker knew: the attempt may
            # have done part of its work, so it counts as started.
            end = cut_short(
                WorkerLost,
                f"worker {owner} stopped renewing its lease on attempt {attempt}",
                started=True,
                attempt=attempt,
                worker_id=owner,
            )
            delay = self.config.retry.delay_after(attempt)
            if store.attempt_lost(
                task_id, attempt, end, delay, expired_only=True, keys=keys, dependents=dependents
            ):
                rescued += 1
                logger.warning(
                    "Rescued task %s from %s (attempt %d of %d): %s",
                    task_id, owner, attempt, max_attempts,
                    "FAILED" if attempt >= max_attempts else f"retry in {delay:.1f}s",
                )  # fmt: skip
        # Rows of workers that stopped without a word (killed with their host):
        # they are only for operators, and a live worker re-registers.
        store.forget_silent_workers(self.config.lease_seconds * 2)
        # Blocked tasks whose key has room (a limit raised in code, a release
        # lost with its process) are let in here, within one turn.
        store.sweep(KEY_SWEEP_BATCH)
        # Workflow tasks whose count of upstreams went wrong (a dependency
        # added to a task already claimed, an upstream deleted) are settled
        # here, within a few turns.
        self.waiting_after, settled = store.sweep_waiting(self.waiting_after, WAITING_SWEEP_BATCH)
        store.after_settled(settled)
        self.rescued += rescued
        return rescued
