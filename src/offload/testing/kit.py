"""The test kit: run due tasks in the test, look at what was enqueued, move
the clock, fire schedules. ``OffloadTasks`` is what the pytest fixture and the
unittest mixin hand out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.tasks import Task, TaskResult

from offload.backend import DatabaseBackend
from offload.exceptions import DrainLimitReached
from offload.models import TaskRecord
from offload.schedules.firing import Fired, Scheduler
from offload.schedules.sync import sync
from offload.states import State
from offload.testing.enqueued import Match, listing, task_path, what_there_is
from offload.testing.running import WORKER_ID, Selection, run_due
from offload.worker.config import get_backend, queue_filter

# The most task attempts one run() makes when not given a limit: a task that
# enqueues itself forever fails the test instead of hanging it.
DRAIN_LIMIT = 1000

Status = str | Iterable[str] | None


class OffloadTasks:
    """Tasks of one offload backend, seen and run from inside a test.

    Everything runs on Django's connection for the backend's database, in the
    test's thread: inside a ``TestCase`` it all happens in the test's
    transaction and is rolled back with it.
    """

    def __init__(self, backend: str = "default") -> None:
        self.alias = backend
        self._synced = False

    @property
    def backend(self) -> DatabaseBackend:
        # Looked up each time: a test may override settings.TASKS.
        return get_backend(self.alias)

    @property
    def database(self) -> str:
        return self.backend.config.database

    # -- the clock ---------------------------------------------------------------------

    def now(self) -> datetime:
        """The database's clock, which the claim compares due times with."""
        return self.backend.store.database_now()

    def advance(self, by: timedelta) -> int:
        """Let ``by`` pass for the waiting tasks: every READY task is due ``by``
        sooner (a delayed task, a retry); return how many moved.

        Their ``available_at`` moves back by ``by``, so they keep their order
        and the claim takes them as it takes any due task. The clock itself is
        the database's: what is enqueued afterwards is due as usual.
        """
        if by < timedelta(0):
            raise ValueError(f"advance() moves time forward only, not by {by}.")
        rows = list(
            TaskRecord.objects.using(self.database)
            .filter(status=State.READY)
            .only("id", "available_at")
        )
        for row in rows:
            row.available_at -= by
        TaskRecord.objects.using(self.database).bulk_update(rows, ["available_at"], batch_size=500)
        return len(rows)

    # -- running -----------------------------------------------------------------------

    def run(
        self,
        *,
        queues: Sequence[str] | None = None,
        tasks: Iterable[Task[..., Any] | str] | None = None,
        limit: int | None = None,
        drain: bool = True,
        now: datetime | None = None,
    ) -> list[TaskResult[..., Any]]:
        """Run the due tasks here, through the worker's claim, runner and
        outcome writes; return each attempt's result as stored, in run order.

        ``queues``, ``tasks`` (Tasks or paths): run only those. ``limit``: at
        most that many attempts (default: ``DrainLimitReached`` past
        ``DRAIN_LIMIT``). ``drain``: also run the tasks that the tasks run
        enqueue (False: only those waiting when the call began). ``now``: run
        as of that time: the waiting tasks are first moved as ``advance`` moves
        them, by how far ``now`` is ahead of the database's clock. A retry is
        due its delay after the failure, as in a worker: one with no delay runs
        again in the same call, a later one at a later call or ``advance``.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}.")
        backend = self.backend
        newest = None
        if not drain:
            newest = (
                TaskRecord.objects.using(self.database)
                .order_by("-id")
                .values_list("id", flat=True)
                .first()
                or 0
            )
        selection = Selection(
            queue_filter(backend, queues),
            None if tasks is None else frozenset(task_path(t) for t in tasks),
            newest,
        )
        if now is not None and (ahead := now - self.now()) > timedelta(0):
            self.advance(ahead)
        # One past the drain limit: a drain of exactly DRAIN_LIMIT attempts is fine.
        results, stopped = run_due(backend, selection, limit or DRAIN_LIMIT + 1)
        if stopped and limit is None:
            raise DrainLimitReached(
                f"run() made more than {DRAIN_LIMIT} attempts and tasks were still due: does a "
                "task enqueue itself? Pass limit= to run a bounded number."
            )
        return results

    # -- what was enqueued ----------------------------------------------------------------

    def enqueued(
        self,
        task: Task[..., Any] | str | None = None,
        *,
        queue: str | None = None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        status: Status = State.READY,
    ) -> list[TaskRecord]:
        """The task rows of this backend that match, oldest first.

        By default the ones waiting to run (READY); ``status=None`` for any.
        ``args`` and ``kwargs`` must equal the stored ones (as JSON).
        """
        match = Match.of(task, queue, args, kwargs, status)
        return match.find(self.alias, self.database)

    def assert_enqueued(
        self,
        task: Task[..., Any] | str | None = None,
        *,
        queue: str | None = None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        status: Status = State.READY,
        count: int | None = None,
    ) -> list[TaskRecord]:
        """Fail unless a matching task (or exactly ``count``) was enqueued; return them."""
        match = Match.of(task, queue, args, kwargs, status)
        found = match.find(self.alias, self.database)
        if (not found and count is None) or (count is not None and len(found) != count):
            expected = "a task" if count is None else f"{count} task(s)"
            raise AssertionError(
                f"Expected {expected} matching {match.describe()}; found {len(found)}.\n"
                + what_there_is(match, self.alias, self.database)
            )
        return found

    def assert_not_enqueued(
        self,
        task: Task[..., Any] | str | None = None,
        *,
        queue: str | None = None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        status: Status = State.READY,
    ) -> None:
        """Fail if a matching task was enqueued, listing the ones that match."""
        match = Match.of(task, queue, args, kwargs, status)
        found = match.find(self.alias, self.database)
        if found:
            raise AssertionError(
                f"Expected no task matching {match.describe()}; found {len(found)}:\n"
                + listing(found[:20], len(found))
            )

    def clear(self) -> int:
        """Delete every task row of this backend, whatever its status; return how many."""
        rows = TaskRecord.objects.using(self.database).filter(backend=self.alias)
        return rows.delete()[0]

    # -- schedules -----------------------------------------------------------------------

    def fire_schedules(
        self, now: datetime | None = None, *, since: datetime | None = None
    ) -> list[Fired]:
        """Fire the backend's schedules as of ``now`` (default: the database's clock),
        through the worker's scheduler; return the ticks fired.

        The first call syncs ``OPTIONS["SCHEDULES"]`` into the table. A schedule
        not fired before starts from its next tick after the time it is first
        seen, as in a worker: pass ``since`` to see it first then, so that
        ``fire_schedules(now=day_2_at_3am, since=day_1)`` fires a daily 3 a.m.
        schedule once. The tasks fired are enqueued; ``run`` runs them.
        """
        backend = self.backend
        if not self._synced:
            sync(backend)
            self._synced = True
        scheduler = Scheduler(backend, owner=WORKER_ID)
        fired: list[Fired] = []
        if since is not None:
            fired += scheduler.tick(since)
        return fired + scheduler.tick(now if now is not None else self.now())
