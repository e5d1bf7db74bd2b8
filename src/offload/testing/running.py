"""Running due tasks in the test's own process, transaction and connection.

The same path as a worker, minus its processes: the store's claim, the
worker's runner, and the store's outcome writes (success, retry, failure,
cancellation), all on Django's shared connection for the backend's database.
Inside a ``TestCase`` that connection is in the test's transaction, so every
row the test wrote is visible and nothing is committed. What it leaves out:
the hard timeout (it needs a process to kill), leases and heartbeats (nothing
else can claim meanwhile), and progress writes (reports are checked, then
dropped).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.tasks import TaskResult, task_backends

from offload.backend import DatabaseBackend
from offload.failures import NOT_STARTED
from offload.store import ClaimedTask, QueueFilter, TaskStore
from offload.worker import runner
from offload.worker.outbox import Posted, write_failure
from offload.worker.reporting import log_outcome

# The lease owner and worker id the rows record for attempts run by the kit.
WORKER_ID = "offload.testing"
# Tasks claimed at a time; the ones the call does not want go back unstarted.
CLAIM_BATCH = 100


@dataclass(frozen=True, slots=True)
class Selection:
    """Which claimed tasks one call runs."""

    queues: QueueFilter
    tasks: frozenset[str] | None  # task paths; None: every task
    newest_id: int | None  # without drain: the newest task due when the call began

    def wants(self, claimed: ClaimedTask) -> bool:
        if self.tasks is not None and claimed.task_path not in self.tasks:
            return False
        return self.newest_id is None or claimed.id <= self.newest_id


def _recorder(store: TaskStore, claimed: ClaimedTask, begun: float) -> runner.Recorder:
    """Write an outcome with the worker's statements, on the test's connection,
    with when the task's code began (``begun``, monotonic), as the worker does."""

    def record(outcome: runner.Outcome, announce: runner.Announce) -> bool:
        if outcome.succeeded:
            ran = time.monotonic() - begun
            done = [(claimed.id, claimed.attempt, outcome.return_json or "null", ran)]
            written = store.complete_many(done, keys=claimed.keys, dependents=claimed.dependents)
            return claimed.id in written
        posted = Posted(claimed, outcome, time.monotonic() - begun, Future(), begun)
        return write_failure(store, posted)

    return record


def _nothing() -> None:
    """A recorder's announcement, for the async path: the runner announces itself."""


def run_one(
    backend: DatabaseBackend, store: TaskStore, claimed: ClaimedTask
) -> TaskResult[..., Any]:
    """Run one claimed task to its outcome, written; return its result as stored."""
    begun = time.monotonic()
    record = _recorder(store, claimed, begun)
    if claimed.is_async:

        async def arecord(outcome: runner.Outcome) -> bool:
            # thread_sensitive: the write runs in this (the test's) thread, on
            # its connection, as the task's own database calls do.
            return await sync_to_async(record)(outcome, _nothing)

        outcome = async_to_sync(runner.arun)(claimed, WORKER_ID, arecord, backend=backend)
    else:
        outcome = runner.run(claimed, WORKER_ID, record, backend=backend)
    log_outcome(claimed, outcome, time.monotonic() - begun, WORKER_ID)
    return task_backends[claimed.backend].get_result(str(claimed.id))


def run_due(
    backend: DatabaseBackend,
    selection: Selection,
    most: int,
) -> tuple[list[TaskResult[..., Any]], bool]:
    """Claim and run due tasks until none that ``selection`` wants is due or
    ``most`` ran; return their results in run order and whether it stopped at ``most``."""
    store = backend.store  # Django's shared connection: the test's
    results: list[TaskResult[..., Any]] = []
    lease = backend.config.lease_seconds
    while len(results) < most:
        # Without a task filter, as many as may still run: none to give back.
        room = most - len(results) if selection.tasks is None else CLAIM_BATCH
        batch = store.claim(
            WORKER_ID, queues=selection.queues, limit=min(room, CLAIM_BATCH), lease_seconds=lease
        )
        wanted = [claimed for claimed in batch if selection.wants(claimed)]
        chosen = wanted[: most - len(results)]
        # Given back before any runs, as never claimed: task code that reads
        # the table finds them READY.
        for claimed in batch:
            if claimed not in chosen:
                store.release(claimed.id, claimed.attempt, NOT_STARTED)
        if not chosen:
            return results, False
        results += [run_one(backend, store, claimed) for claimed in chosen]
    return results, True
