"""The pruner: deletes finished tasks, and schedule fire records, past their
retention (``RETAIN_SUCCESSFUL``, ``RETAIN_FAILED``, ``RETAIN_CANCELLED``,
``RETAIN_SCHEDULE_FIRES``), in paced batches (see ``offload.retention``).

Every supervisor runs a ``Pruner`` thread, but only the holder of the
``pruner`` lease prunes (an elected role, like the rescuer; see ``roles``).
Two holders in a row (a lease that changed hands) are safe: a delete finds
only rows that are finished and old enough, and a row deleted once is gone.
A turn works for at most ``TURN_SECONDS``, well inside the lease, and the
next turn follows at once while old rows remain; otherwise once a minute.
Worker rows of dead workers are forgotten by the rescuer, depth samples by
the sampler.
"""

from __future__ import annotations

import logging
import time

from offload.conf import Options
from offload.retention import PruneRun, fires_kept_for, rules_from
from offload.store import TaskStore
from offload.store.vacuum import vacuum, vacuum_due
from offload.worker.roles import ElectedRole

logger = logging.getLogger("offload.worker")

LEASE_NAME = "pruner"
PASS_SECONDS = 60
TURN_SECONDS = 20
# Renewed at each turn: longer than a turn and the pause after it, twice over.
LEASE_SECONDS = (PASS_SECONDS + TURN_SECONDS) * 2
# The pause after a turn that stopped with old rows left.
BACKLOG_PAUSE = 1.0


class Pruner(ElectedRole):
    lease_name = LEASE_NAME
    label = "Prune"
    close_between_turns = True  # a pass a minute

    def __init__(self, alias: str, config: Options, owner: str) -> None:
        super().__init__(alias, owner)
        self.config = config
        self.deleted = 0
        self.more = False  # whether the last turn left old rows

    def lease_seconds(self) -> float:
        return LEASE_SECONDS

    def pause_seconds(self) -> float:
        return BACKLOG_PAUSE if self.more else PASS_SECONDS

    def work(self, store: TaskStore) -> int:
        run = PruneRun(
            store,
            batch_size=self.config.prune_batch_size,
            rate=self.config.prune_max_rows_per_second,
            stop=self._stop,
            deadline=time.monotonic() + TURN_SECONDS,
        )
        task_rows = sum(run.tasks(rule) for rule in rules_from(self.config))
        if task_rows:
            # The links of the workflow tasks just deleted (none: nothing to look for).
            run.links()
        fires = fires_kept_for(self.config)
        if fires is not None:
            run.fires(fires)
        self.more = not run.complete
        if self.config.prune_vacuum and not self.more and vacuum_due(store.alias, task_rows):
            began = time.monotonic()
            vacuum(store.alias)
            logger.info(
                "Vacuumed the task table (autovacuum is off for it) in %.1fs",
                time.monotonic() - began,
            )
        deleted = sum(run.deleted.values())
        if deleted:
            counts = ", ".join(f"{n} {label}" for label, n in run.deleted.items() if n)
            logger.info("Pruned %d row(s) past their retention: %s", deleted, counts)
        self.deleted += deleted
        return deleted
