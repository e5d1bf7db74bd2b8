"""The scheduler thread that ``offload worker`` runs beside its task processes.

It syncs the schedules from code once, then ticks every ``SCHEDULER_INTERVAL``
seconds with the database's clock (so schedulers on hosts with skewed clocks
agree on what is due). A database error is logged and the next pass tries again
on a new connection: the thread never ends the worker.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from django.db import DatabaseError, connections

from offload.schedules.firing import Scheduler
from offload.schedules.sync import sync
from offload.store.base import database_now

if TYPE_CHECKING:
    from offload.backend import DatabaseBackend

logger = logging.getLogger("offload.scheduler")


class SchedulerThread(threading.Thread):
    def __init__(self, backend: DatabaseBackend, owner: str = "") -> None:
        super().__init__(name="offload-scheduler", daemon=True)
        self.backend = backend
        self.scheduler = Scheduler(backend, owner)
        self._stopped = threading.Event()
        self.synced = False

    def run(self) -> None:
        alias = self.backend.config.database
        try:
            while not self._stopped.is_set():
                try:
                    if not self.synced:
                        sync(self.backend)
                        self.synced = True
                    self.scheduler.tick(database_now(connections[alias]))
                except DatabaseError:
                    logger.exception("Scheduler pass failed; trying again")
                    connections[alias].close()
                except Exception:
                    logger.exception("Scheduler pass failed unexpectedly; trying again")
                self._stopped.wait(self.backend.config.scheduler_interval)
        finally:
            connections.close_all()  # this thread's own connections

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout)


def start_scheduler(backend: DatabaseBackend, owner: str = "") -> SchedulerThread:
    thread = SchedulerThread(backend, owner)
    thread.start()
    return thread
