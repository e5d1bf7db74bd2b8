"""The scheduler's tick: fire every due schedule of one backend, each tick once.

Exactly once, whatever runs: every worker may run a scheduler, on any number of
hosts. A tick fires in one transaction that enqueues the task (through the
backend, so the row, its checks and PostgreSQL's NOTIFY are those of any
enqueue) and inserts a ``ScheduleFire`` row keyed by (schedule, fire time) under
a unique constraint. The second scheduler to try the same tick hits that
constraint, and its transaction, task included, rolls back. Fire times are a
pure function of the schedule (see ``spec``), so every scheduler computes the
same keys; ``now`` is passed in, so tests drive the clock.

``Schedule.next_fire_at`` only saves work: it is the earliest tick not handled
yet, advanced with a compare-and-set so a stale scheduler cannot move it back.
A scheduler that dies between firing and advancing leaves the tick to be tried
again by another, which finds it already fired.

The fire row is written with :func:`fire_insert`, the statement Django's ORM
would send, spelled out so it can be read and compared per engine
(``tests/sql/fire.*.sql``). The task's wake-up is the enqueue's (see
``store.announce``): NOTIFY on PostgreSQL, the local sockets elsewhere, both
at the fire's commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Q

from offload.schedules.errors import clear_error, note_error
from offload.schedules.spec import Timing, parse_timing
from offload.schedules.targets import enqueue_for
from offload.states import State
from offload.store.vendor import Vendor, is_lock_conflict, vendor_for

logger = logging.getLogger("offload.scheduler")

if TYPE_CHECKING:
    from offload.backend import DatabaseBackend
    from offload.models import Schedule


FIRE_TABLE = "offload_schedule_fire"
FIRE_COLUMNS = ("schedule_id", "fire_at", "fired_at", "outcome", "fired_by", "task_id")


def fire_insert(vendor: Vendor) -> str:
    """The INSERT of one fire row (parameters in ``FIRE_COLUMNS`` order).

    A plain INSERT, no "skip if present": the unique (schedule, fire_at) key
    must raise, so that a second scheduler's whole transaction, its task
    included, rolls back. Quoted and returning the id as the ORM writes it.
    """
    q = vendor.quote
    table = f"{q}{FIRE_TABLE}{q}"
    columns = ", ".join(f"{q}{column}{q}" for column in FIRE_COLUMNS)
    marks = ", ".join(["%s"] * len(FIRE_COLUMNS))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING {table}.{q}id{q}"


def record_fire(
    database: str,
    schedule_id: int,
    fire_at: datetime,
    fired_at: datetime,
    outcome: str,
    task_id: int | None,
    fired_by: str = "",
) -> None:
    """Insert the fire row of one tick; ``IntegrityError`` if it was fired already."""
    connection = connections[database]
    adapt = connection.ops.adapt_datetimefield_value
    params = [schedule_id, adapt(fire_at), adapt(fired_at), outcome, fired_by, task_id]
    with connection.cursor() as cursor:
        cursor.execute(fire_insert(vendor_for(connection)), params)
        cursor.fetchone()


@dataclass(frozen=True)
class Fired:
    """One tick a scheduler handled (and no other scheduler did)."""

    schedule: str
    fire_at: datetime
    outcome: str
    task_id: int | None


def timing_of(row: Schedule) -> Timing:
    """The row's timing; raise ``InvalidSchedule`` if an edit left it malformed."""
    return parse_timing(row.cron or None, row.interval, row.timezone, settings.TIME_ZONE or "UTC")


class Scheduler:
    """Fires the schedules of one backend. Cheap to build; holds no connection."""

    def __init__(self, backend: DatabaseBackend, owner: str = "") -> None:
        self.backend = backend
        self.owner = owner  # recorded in the fire rows, for operators
        self.database = backend.config.database
        self.grace = timedelta(seconds=backend.config.schedule_grace_seconds)
        self.catch_up_limit = backend.config.schedule_catch_up_limit

    def tick(self, now: datetime) -> list[Fired]:
        """Handle every tick due at ``now`` (aware); return those this call fired."""
        from offload.models import Schedule

        rows = (
            Schedule.objects.using(self.database)
            .filter(backend=self.backend.alias, enabled=True)
            .filter(Q(next_fire_at__isnull=True) | Q(next_fire_at__lte=now))
        )
        fired: list[Fired] = []
        for row in list(rows):  # read them all before this connection writes
            try:
                fired.extend(self._handle(row, now))
            except DatabaseError as exc:
                if is_lock_conflict(exc):
                    # Two schedulers' transactions met on the same locks and the
                    # database chose this one to lose: nothing was written, and
                    # the tick is tried again on the next pass (where it is found
                    # fired, or fires).
                    logger.info("Schedule %r met a lock conflict; trying again next pass",
                                row.name)  # fmt: skip
                elif connections[self.database].is_usable():
                    # The database refused this row's values (its transaction
                    # rolled back); the connection serves the other schedules.
                    note_error(row, self.database, now, exc)
                else:
                    raise  # the connection is gone: the whole pass is tried again
            except Exception as exc:
                # One schedule's fault (a malformed row, a task that no longer
                # imports, anything) is its own: noted on its row, and the other
                # schedules fire.
                note_error(row, self.database, now, exc)
        self._note_last_fired(fired)
        return fired

    def _handle(self, row: Schedule, now: datetime) -> list[Fired]:
        """Fire the row's due ticks and advance it; raise what went wrong with it."""
        timing = timing_of(row)
        fired: list[Fired] = []
        failure: BaseException | None = None
        if row.next_fire_at is not None:
            for fire_at in self.due(row, timing, now):
                result = self.fire(row, fire_at, now)
                if isinstance(result, Fired):
                    fired.append(result)
                elif result is not None:
                    failure = result
        self._advance(row, timing.next_after(now))
        if failure is not None:
            raise failure
        if row.last_error:
            clear_error(row, self.database)
        return fired

    def due(self, row: Schedule, timing: Timing, now: datetime) -> list[datetime]:
        """The ticks to fire now, earliest first, by the row's catch-up policy."""
        assert row.next_fire_at is not None
        keep = self.catch_up_limit if row.catch_up == "all" else 1
        latest_first: list[datetime] = []
        missed = 0
        for fire_at in timing.until(now):
            if fire_at < row.next_fire_at:
                break
            if len(latest_first) < keep:
                latest_first.append(fire_at)
            elif row.catch_up != "all":
                break
            else:
                missed += 1
                if missed > 1000:  # enough to say that ticks were dropped
                    break
        if missed and row.catch_up == "all":
            logger.warning(
                "Schedule %r missed more than %d ticks; firing the last %d",
                row.name, self.catch_up_limit, self.catch_up_limit,
            )  # fmt: skip
        if row.catch_up == "skip":
            latest_first = [t for t in latest_first if now - t <= self.grace]
        return latest_first[::-1]

    def fire(self, row: Schedule, fire_at: datetime, now: datetime) -> Fired | Exception | None:
        """Fire one tick; None if another scheduler already did, the exception if it failed."""
        from offload.models import ScheduleFire

        outcome = ScheduleFire.Outcome.ENQUEUED
        task_id: int | None = None
        try:
            with transaction.atomic(using=self.database):
                if row.skip_if_running and self.previous_run_pending(row):
                    outcome = ScheduleFire.Outcome.SKIPPED
                else:
                    task_id = enqueue_for(row, self.backend)
                record_fire(self.database, row.pk, fire_at, now, outcome, task_id, self.owner)
        except IntegrityError:
            return None  # fired by another scheduler: this transaction rolled back
        except DatabaseError:
            raise
        except Exception as exc:
            # A task that no longer imports, one not allowed, or arguments it
            # refuses: this tick is lost (and said so on the row), the next ones
            # are tried again.
            logger.exception("Schedule %r could not fire its tick of %s", row.name, fire_at)
            return exc
        logger.info("Schedule %r fired its tick of %s: %s", row.name, fire_at, outcome)
        return Fired(row.name, fire_at, str(outcome), task_id)

    def previous_run_pending(self, row: Schedule) -> bool:
        from offload.models import ScheduleFire, TaskRecord

        last = (
            ScheduleFire.objects.using(self.database)
            .filter(schedule_id=row.pk, task_id__isnull=False)
            .order_by("-fire_at")
            .values_list("task_id", flat=True)
            .first()
        )
        return (
            last is not None
            and TaskRecord.objects.using(self.database)
            .filter(pk=last, status__in=[State.READY, State.RUNNING])
            .exists()
        )

    def _note_last_fired(self, fired: list[Fired]) -> None:
        from offload.models import Schedule

        latest: dict[str, datetime] = {}
        for item in fired:
            latest[item.schedule] = max(item.fire_at, latest.get(item.schedule, item.fire_at))
        for name, fire_at in latest.items():
            Schedule.objects.using(self.database).filter(
                Q(last_fired_at__isnull=True) | Q(last_fired_at__lt=fire_at),
                backend=self.backend.alias,
                name=name,
            ).update(last_fired_at=fire_at)

    def _advance(self, row: Schedule, next_fire_at: datetime) -> None:
        from offload.models import Schedule

        # Compare-and-set: if another scheduler (or an edit) changed it since
        # this one read the row, theirs stands.
        current = (
            Q(next_fire_at__isnull=True)
            if row.next_fire_at is None
            else Q(next_fire_at=row.next_fire_at)
        )
        Schedule.objects.using(self.database).filter(current, pk=row.pk).update(
            next_fire_at=next_fire_at
        )


def run_now(row: Schedule, backend: DatabaseBackend, now: datetime) -> int:
    """Fire ``row`` at once, outside its timing (the admin's "run now"); return the task id."""
    from offload.models import ScheduleFire

    database = backend.config.database
    with transaction.atomic(using=database):
        task_id = enqueue_for(row, backend)
        record_fire(database, row.pk, now, now, ScheduleFire.Outcome.MANUAL, task_id)
    return task_id
