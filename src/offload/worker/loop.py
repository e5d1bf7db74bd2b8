"""The worker loop: claim a batch, run each task, record each outcome.

One thread, one task at a time. The supervisor (processes, threads, an event
loop for ``async def`` tasks) builds on this loop.
"""

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from django.db import DatabaseError, close_old_connections, connections
from django.tasks import task_backends

from offload.backend import DatabaseBackend
from offload.exceptions import BackendMisconfigured
from offload.payload import encode
from offload.store import ClaimedTask, TaskStore
from offload.store.connection import open_private
from offload.worker import runner
from offload.worker.identity import make_worker_id

logger = logging.getLogger("offload.worker")

# A claimed task is RUNNING (its start stamped, no other worker can take it)
# from the claim on, so a worker claims only what it expects to start within
# this many seconds, judged by how long its recent tasks took. Tiny tasks are
# claimed in full batches (one statement for many tasks); slow ones one by one.
CLAIM_HORIZON_SECONDS = 0.1

# After a database error the loop waits, doubling from the first figure up to
# the second, then tries again on a fresh connection. A burst run gives up after
# BURST_DATABASE_ATTEMPTS failures in a row rather than wait forever.
DATABASE_BACKOFF_SECONDS = (0.1, 5.0)
BURST_DATABASE_ATTEMPTS = 5


@dataclass
class WorkerStats:
    succeeded: int = 0
    failed: int = 0
    stale: int = 0  # outcomes dropped because a newer attempt holds the task
    released: int = 0

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed


def get_backend(alias: str) -> DatabaseBackend:
    backend = task_backends[alias]
    if not isinstance(backend, DatabaseBackend):
        raise BackendMisconfigured(
            f"TASKS[{alias!r}] uses {type(backend).__module__}.{type(backend).__qualname__}; "
            "the offload worker runs tasks of offload.backend.DatabaseBackend only."
        )
    backend.ensure_usable()
    return backend


class Worker:
    """Run tasks of one backend until stopped (or, in burst mode, until none are due)."""

    def __init__(
        self,
        backend_alias: str = "default",
        *,
        queues: Sequence[str] | None = None,
        name: str | None = None,
        batch_size: int | None = None,
        on_task: Callable[[ClaimedTask, runner.Outcome, float], None] | None = None,
    ) -> None:
        self.backend = get_backend(backend_alias)
        # The worker's private connection is opened by run(), in the thread that
        # uses it: Django connections belong to the thread that made them.
        self.store = TaskStore(self.backend.config.database)
        self.queues = list(queues) if queues else None
        unknown = (
            sorted(set(self.queues or ()) - self.backend.queues) if self.backend.queues else []
        )
        if unknown:
            raise BackendMisconfigured(
                f"Queue(s) {', '.join(map(repr, unknown))} are not in TASKS[{backend_alias!r}]"
                f"['QUEUES'] ({', '.join(sorted(self.backend.queues))}): "
                "a worker on them would never run anything."
            )
        self.worker_id = make_worker_id(name)
        self.batch_size = batch_size or self.backend.config.claim_batch_size
        self.on_task = on_task
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        self._running_task = False
        self._mean_task_seconds: float | None = None  # moving average; None: none run yet

    # -- stopping ---------------------------------------------------------------

    def stop(self) -> None:
        """Finish the running task, give back the rest of the batch, then return."""
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully; a second one interrupts the running task."""

        def handle(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                if self._running_task:
                    logger.warning("Second %s: stopping now", signal.Signals(signum).name)
                    raise runner.WorkerInterrupted
                return  # already stopping, and no task to interrupt
            logger.info(
                "%s received: finishing the running task, then stopping",
                signal.Signals(signum).name,
            )
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # -- running ---------------------------------------------------------------------

    def run(self, *, burst: bool = False) -> WorkerStats:
        """Work until ``stop()``; with ``burst``, return once no task is due."""
        database = self.backend.config.database
        self.store = TaskStore(database, connection=open_private(database))
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    batch = self._claim()
                    if batch:
                        self._run_batch(batch)
                    failures = 0
                except DatabaseError:
                    # The server restarted, the connection dropped, a lock timed
                    # out: none of that should end the worker. Tasks it had
                    # claimed keep their lease and are not lost.
                    failures += 1
                    if burst and failures >= BURST_DATABASE_ATTEMPTS:
                        raise
                    delay = min(DATABASE_BACKOFF_SECONDS[0] * 2 ** (failures - 1),
                                DATABASE_BACKOFF_SECONDS[1])  # fmt: skip
                    logger.exception("Database error; retrying in %.1fs", delay)
                    self.store.reset()
                    self._stopping.wait(delay)
                    continue
                if not batch:
                    if burst:
                        break
                    self._stopping.wait(self.backend.config.poll_interval)
        finally:
            self.close()
        return self.stats

    def close(self) -> None:
        """Close the worker's private connection."""
        if self.store.connection is not connections[self.store.alias]:
            self.store.connection.close()

    def claim_limit(self) -> int:
        """How many tasks to claim now: what can start within the claim horizon."""
        if self._mean_task_seconds is None:
            return 1  # nothing known yet: the first task could be slow
        fits = int(CLAIM_HORIZON_SECONDS / max(self._mean_task_seconds, 1e-6))
        return max(1, min(self.batch_size, fits))

    def _claim(self) -> list[ClaimedTask]:
        self.store.prepare()
        return self.store.claim(
            self.worker_id,
            queues=self.queues,
            limit=self.claim_limit(),
            lease_seconds=self.backend.config.lease_seconds,
        )

    def _run_batch(self, batch: list[ClaimedTask]) -> None:
        for index, claimed in enumerate(batch):
            if self._stopping.is_set():
                self._release(batch[index:])
                return
            try:
                self._run_one(claimed)
            except (runner.WorkerInterrupted, KeyboardInterrupt):
                # A second stop signal, or Ctrl-C where no handler is installed
                # (an embedded worker): give the tasks back, then stop.
                self._release(batch[index:])
                self._stopping.set()
                return

    def _run_one(self, claimed: ClaimedTask) -> None:
        # The same connection hygiene Django applies around a request: task code
        # starts with usable connections and leaves none broken behind it.
        close_old_connections()
        begun = time.monotonic()
        self._running_task = True
        try:
            outcome = runner.run(claimed, self.worker_id, lambda o: self._record(claimed, o))
        finally:
            self._running_task = False
            close_old_connections()
        elapsed = time.monotonic() - begun
        previous = self._mean_task_seconds
        self._mean_task_seconds = elapsed if previous is None else 0.7 * previous + 0.3 * elapsed
        logger.info(
            "task id=%s path=%s queue=%s attempt=%s duration=%.3fs outcome=%s",
            claimed.id, claimed.task_path, claimed.queue_name, claimed.attempt, elapsed,
            "SUCCESSFUL" if outcome.succeeded else "FAILED",
        )  # fmt: skip
        if self.on_task is not None:
            self.on_task(claimed, outcome, elapsed)

    def _record(self, claimed: ClaimedTask, outcome: runner.Outcome) -> bool:
        if outcome.succeeded:
            written = self.store.complete(
                claimed.id, claimed.attempt, outcome.return_json or "null"
            )
        else:
            written = self.store.fail(claimed.id, claimed.attempt, encode(outcome.errors, "errors"))
        if not written:
            self.stats.stale += 1
            logger.warning(
                "task id=%s attempt=%s: outcome dropped, a newer attempt holds the task",
                claimed.id, claimed.attempt,
            )  # fmt: skip
        elif outcome.succeeded:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        return written

    def _release(self, claimed: Sequence[ClaimedTask]) -> None:
        self.store.prepare()
        for task in claimed:
            if self.store.release(task.id, task.attempt):
                self.stats.released += 1
        if claimed:
            logger.info("Gave back %d claimed task(s) that had not finished", len(claimed))
