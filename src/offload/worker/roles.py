"""Elected roles: a thread in every supervisor whose work one of them does at a time.

The rescuer and the depth sampler are such roles. Every supervisor runs the
thread, so the role survives any host; only the holder of the role's row in
``offload_lease`` does the work, so the statements are not repeated by every
host. The holder renews the row at each turn; if its host dies, the row lapses
after the role's lease and another supervisor takes the role at its next turn.
The work itself must be safe to run twice in a row by two holders (a lease
that changed hands): each role says in its module why it is.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod

from django.db import DatabaseError, connections

from offload.store import TaskStore
from offload.store.vendor import is_lock_conflict

logger = logging.getLogger("offload.worker")


class ElectedRole(ABC):
    """Subclasses name the role and say how long its lease lasts, how long to
    wait between turns, and what a turn does (``work``)."""

    lease_name: str
    label: str  # for the logs: "Rescue sweep", "Queue depth sample"
    # A role that works once a minute need not hold a connection in between;
    # one that works every few seconds keeps it.
    close_between_turns = False

    def __init__(self, alias: str, owner: str) -> None:
        self.alias = alias
        self.owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"offload-{self.lease_name}", daemon=True
        )
        self._holding = False

    @abstractmethod
    def lease_seconds(self) -> float:
        """How long the role's lease lasts without a renewal."""

    @abstractmethod
    def pause_seconds(self) -> float:
        """Seconds to wait after a turn."""

    @abstractmethod
    def work(self, store: TaskStore) -> int:
        """Do one turn's work as the role's holder; return how many things it did."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def turn(self) -> int:
        """If this supervisor holds the role (taking it if free), do the work."""
        store = TaskStore(self.alias)
        self._holding = store.hold_lease(self.lease_name, self.owner, self.lease_seconds())
        if not self._holding:
            return 0
        return self.work(store)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.turn()
                except DatabaseError as exc:
                    if is_lock_conflict(exc):
                        # A deadlock victim was rolled back whole; the next
                        # turn redoes it. Nothing for an operator to act on.
                        logger.info("%s lost a lock conflict; trying again later", self.label)
                    else:
                        logger.warning("%s failed; trying again later", self.label, exc_info=True)
                    connections[self.alias].close()
                except Exception:
                    # A bug in one turn must not end the role for this host.
                    logger.exception("%s failed unexpectedly; trying again later", self.label)
                if self.close_between_turns:
                    with contextlib.suppress(DatabaseError):
                        connections[self.alias].close()
                self._stop.wait(self.pause_seconds())
            if self._holding:
                try:
                    TaskStore(self.alias).drop_lease(self.lease_name, self.owner)
                except DatabaseError:
                    logger.debug("Could not hand back the %s lease", self.lease_name, exc_info=True)
        finally:
            connections[self.alias].close()
