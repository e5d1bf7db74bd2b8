"""Retention: which finished rows are old enough to delete, and the paced loop
that deletes them in batches (``offload.store.prune`` holds the statements).

The elected pruner (``offload.worker.pruner``) runs it with the retention
options; ``manage.py offload prune`` runs it with the operator's flags. Both
go batch by batch, each batch its own transaction, and wait between batches
so that no more than ``PRUNE_MAX_ROWS_PER_SECOND`` rows go per second: a
large backlog of old rows is worked off at a pace the database, and the
workers claiming beside it, keep up with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError

from offload.conf import Options
from offload.states import State
from offload.store import TaskStore
from offload.store.prune import (
    EVERY_TASK,
    Batch,
    PruneFilter,
    delete_batch,
    dependency_batch,
    fire_batch,
    task_batch,
)
from offload.store.vendor import is_lock_conflict

logger = logging.getLogger("offload.worker")

# Each finished status and the option that says how long its tasks are kept.
RETENTION = {
    State.SUCCESSFUL: "retain_successful",
    State.FAILED: "retain_failed",
    State.CANCELLED: "retain_cancelled",
}
# The label of the workflow links a run deletes (not tasks: a command's
# count of tasks leaves them out).
LINKS = "workflow links"
# A deadlock or lock timeout (MariaDB) loses one batch; past this many in a
# row, something holds the rows for good and the run says so.
MAX_CONFLICTS = 5


@dataclass(frozen=True)
class Rule:
    """Delete ``status`` tasks that finished more than ``older_than`` ago."""

    status: State
    older_than: timedelta


def rules_from(config: Options) -> list[Rule]:
    """The retention options as rules; a status kept forever (None) has none."""
    found = []
    for status, name in RETENTION.items():
        seconds = getattr(config, name)
        if seconds is not None:
            found.append(Rule(status, timedelta(seconds=seconds)))
    return found


def fires_kept_for(config: Options) -> timedelta | None:
    seconds = config.retain_schedule_fires
    return None if seconds is None else timedelta(seconds=seconds)


def cutoff(store: TaskStore, older_than: timedelta) -> object:
    """``older_than`` before now on the database's clock (like every time offload
    writes), adapted for a statement's parameter."""
    before = store.database_now() - older_than
    return store.connection.ops.adapt_datetimefield_value(before)


@dataclass
class PruneRun:
    """One run of batches on one store, paced by ``rate`` rows per second.

    ``stop`` ends the run between batches (and cuts a wait short); so does
    ``deadline`` (a ``time.monotonic()`` value). ``complete`` says whether the
    run got to the end of every rule it was given. ``on_batch`` hears the
    label and deleted count of each batch (the command's progress bar).
    """

    store: TaskStore
    batch_size: int
    rate: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None
    on_batch: Callable[[str, int], None] | None = None
    complete: bool = True
    deleted: dict[str, int] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)
    _total: int = 0

    def tasks(self, rule: Rule, where: PruneFilter = EVERY_TASK) -> int:
        """Delete the tasks ``rule`` says are old enough; return how many."""
        cutoff = self._cutoff(rule.older_than)
        label = rule.status.value
        return self._batches(label, lambda: task_batch(rule.status, cutoff, self.batch_size, where))

    def fires(self, older_than: timedelta) -> int:
        """Delete the schedule fire records older than ``older_than``; return how many."""
        cutoff = self._cutoff(older_than)
        return self._batches("schedule fires", lambda: fire_batch(cutoff, self.batch_size))

    def links(self) -> int:
        """Delete the workflow links of tasks no longer stored; return how many."""
        return self._batches(LINKS, lambda: dependency_batch(self.batch_size))

    def _cutoff(self, older_than: timedelta) -> object:
        return cutoff(self.store, older_than)

    def _batches(self, label: str, make: Callable[[], Batch]) -> int:
        deleted, conflicts = 0, 0
        while True:
            self._pace()
            if self._should_end():
                self.complete = False
                break
            try:
                picked, done = delete_batch(self.store, make())
            except DatabaseError as exc:
                conflicts += 1
                if not is_lock_conflict(exc) or conflicts > MAX_CONFLICTS:
                    raise
                logger.info("Prune batch of %s lost a lock conflict; trying again", label)
                continue
            conflicts = 0
            deleted += done
            self._total += done
            self.deleted[label] = self.deleted.get(label, 0) + done
            if self.on_batch is not None:
                self.on_batch(label, done)
            if picked < self.batch_size:
                break
        return deleted

    def _should_end(self) -> bool:
        late = self.deadline is not None and time.monotonic() > self.deadline
        return late or self.stop.is_set()

    def _pace(self) -> None:
        """Wait until the rows deleted so far, over the whole run, are within the rate cap."""
        if self.rate is None:
            return
        ahead = self._started + self._total / self.rate - time.monotonic()
        if ahead > 0:
            self.stop.wait(ahead)
