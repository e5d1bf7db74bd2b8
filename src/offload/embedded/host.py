"""One web process's embedded worker: a slot to take, then a worker to run in it.

At most ``PROCESSES`` web processes run a worker at a time. Each slot is a
row of ``offload_lease`` (``embedded:<alias>:<n>``), held the way the elected
roles hold theirs (``store.hold_lease``): renewed every heartbeat, lapsing
after ``LEASE_SECONDS`` when its holder dies, so another web process takes the
slot at its next try. A process without a slot tries again every heartbeat.

The process holding a slot runs, on threads of its own: the ``Worker`` that
``offload worker`` runs in each task process (dispatcher, thread pool, event
loop for async tasks, heartbeats, a worker row), the rescuer, the depth
sampler and the pruner (elected among every host, embedded or not), and the
scheduler if asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING

from django.db import DatabaseError, connections

from offload.backend import DatabaseBackend
from offload.embedded_options import EmbeddedSettings
from offload.store import TaskStore
from offload.worker.config import WorkerConfig
from offload.worker.identity import make_worker_id
from offload.worker.loop import Worker
from offload.worker.pruner import Pruner
from offload.worker.rate_promoter import RatePromoter
from offload.worker.rescue import Rescuer
from offload.worker.roles import ElectedRole
from offload.worker.sampler import DepthSampler

if TYPE_CHECKING:
    from offload.schedules.thread import SchedulerThread

logger = logging.getLogger("offload.embedded")

# Beyond the shutdown timeout, how long stop() waits for the worker to give its
# tasks back and close before it lets the process go.
GIVE_BACK_SECONDS = 5.0


def slot_name(alias: str, number: int) -> str:
    return f"embedded:{alias}:{number}"


class EmbeddedHost:
    """Takes a slot, runs a worker in it, and stops it when told (or when the slot is lost)."""

    def __init__(self, backend: DatabaseBackend, settings: EmbeddedSettings) -> None:
        self.backend = backend
        self.settings = settings
        self.pid = os.getpid()
        # The lease owner and the worker row's id: a slot's holder is found by it.
        self.worker_id = make_worker_id("embedded")
        self.slot: int | None = None
        self.worker: Worker | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offload-embedded", daemon=True)
        self._worker_thread: threading.Thread | None = None
        self._roles: list[ElectedRole] = []
        self._scheduler: SchedulerThread | None = None

    @property
    def alias(self) -> str:
        return self.backend.config.database

    def start(self) -> None:
        self._thread.start()

    # -- the slot ---------------------------------------------------------------------

    def _take_slot(self, store: TaskStore) -> int | None:
        seconds = self.backend.config.lease_seconds
        for number in range(1, self.settings.processes + 1):
            if store.hold_lease(slot_name(self.backend.alias, number), self.worker_id, seconds):
                return number
        return None

    def _renew_slot(self, store: TaskStore) -> bool:
        assert self.slot is not None
        name = slot_name(self.backend.alias, self.slot)
        return store.hold_lease(name, self.worker_id, self.backend.config.lease_seconds)

    def _run(self) -> None:
        pause = self.backend.config.heartbeat_seconds
        try:
            while not self._stop.is_set():
                try:
                    self.turn(TaskStore(self.alias))
                except DatabaseError:
                    logger.warning("Embedded worker: slot check failed, retrying", exc_info=True)
                    connections[self.alias].close()
                except Exception:
                    logger.exception("Embedded worker: slot check failed unexpectedly")
                self._stop.wait(pause)
        finally:
            connections[self.alias].close()

    def turn(self, store: TaskStore) -> None:
        """Take a slot (and start the worker), or keep the one held; the loop's step."""
        if self.slot is None:
            self.slot = self._take_slot(store)
            if self.slot is not None:
                self._start_worker()
        elif not self._renew_slot(store):
            # The database was out of reach longer than a lease: another process
            # may have the slot now, and two would be more than allowed.
            logger.warning("Embedded worker %s lost its slot; stopping it", self.worker_id)
            self._stop_worker()
            self.slot = None
        elif self._worker_thread is not None and not self._worker_thread.is_alive():
            logger.error("Embedded worker %s ended; starting it again", self.worker_id)
            self._start_worker()

    # -- the worker -------------------------------------------------------------------

    def _start_worker(self) -> None:
        s = self.settings
        config = WorkerConfig(
            self.backend.alias,
            queues=s.queues,
            name="embedded",
            worker_id=self.worker_id,
            threads=s.threads,
            async_concurrency=s.async_concurrency,
            shutdown_timeout=s.shutdown_timeout,
            process_title=False,
        )
        worker = Worker(config)
        self.worker = worker
        self._worker_thread = threading.Thread(
            target=self._serve, args=(worker,), name="offload-embedded-worker", daemon=True
        )
        self._worker_thread.start()
        if not self._roles:
            self._roles = [
                Rescuer(self.alias, self.backend.config, self.worker_id),
                DepthSampler(self.alias, self.worker_id, self.backend.queues),
                Pruner(self.alias, self.backend.config, self.worker_id),
                RatePromoter(self.alias, self.worker_id),
            ]
            for role in self._roles:
                role.start()
        if s.scheduler and self._scheduler is None:
            # Imported here: the scheduler loads the schedule models.
            from offload.schedules.thread import start_scheduler

            self._scheduler = start_scheduler(self.backend, self.worker_id)
        logger.info(
            "Embedded worker %s started in process %d (slot %d of %d)",
            self.worker_id, os.getpid(), self.slot, s.processes,
        )  # fmt: skip

    def _serve(self, worker: Worker) -> None:
        try:
            worker.run()
        except Exception:
            logger.exception("Embedded worker %s failed", self.worker_id)
        finally:
            connections[self.alias].close()

    def _stop_worker(self) -> None:
        """Stop the worker: running tasks get the shutdown timeout, then go back."""
        worker, thread = self.worker, self._worker_thread
        if worker is None or thread is None:
            return
        worker.stop()
        thread.join(self.settings.shutdown_timeout + GIVE_BACK_SECONDS)
        if thread.is_alive():
            worker.force_stop("the web process was exiting")
            thread.join(GIVE_BACK_SECONDS)
        self.worker = self._worker_thread = None

    def stop(self) -> None:
        """Stop everything this host started and free its slot; for the process's exit."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(GIVE_BACK_SECONDS)
        self._stop_worker()
        for role in self._roles:
            role.stop()
        self._roles = []
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self.slot is not None:
            with contextlib.suppress(DatabaseError):
                TaskStore(self.alias).drop_lease(
                    slot_name(self.backend.alias, self.slot), self.worker_id
                )
            self.slot = None
        with contextlib.suppress(DatabaseError):
            connections[self.alias].close()
