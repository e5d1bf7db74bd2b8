"""One worker process: a dispatcher that claims tasks and records their outcomes,
threads for sync tasks and an event loop for ``async def`` ones.

The dispatcher (the thread that calls ``run()``) is the only user of the
worker's private database connection: it claims, writes every outcome, gives
tasks back and, on PostgreSQL, LISTENs for new tasks. It composes the parts:

- ``claims``: how much to claim, and when to look again;
- ``cpu_bound``: which tasks are CPU-bound (one at a time per process);
- ``wakeups``: the one ``select()`` it sleeps in, and what ends it;
- ``outbox``: where tasks post their outcome for it to write and settle;
- ``leases``: heartbeats, cancel requests, orphaned claims;
- ``recycling``: when the process should be replaced;
- ``reporting``: the process title, the figures, a log line per task;
- ``execution``: what runs in the pool threads and on the event loop;
- ``progress_writes``: the progress tasks report, written on its connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from types import FrameType

from django.db import DatabaseError, connections

from offload.conf import Options
from offload.progress import ProgressBoard
from offload.store import ClaimedTask, TaskStore
from offload.store.connection import open_private
from offload.store.vendor import is_lock_conflict
from offload.worker import protocol
from offload.worker.announcer import Announcer
from offload.worker.claims import ClaimSizer, Kind, Load, Looks
from offload.worker.config import WorkerConfig, get_backend, queue_filter
from offload.worker.cpu_bound import CpuBound
from offload.worker.execution import Execution
from offload.worker.identity import make_worker_id
from offload.worker.leases import Leases, Registration, queue_label
from offload.worker.outbox import Outbox, Posted, write_failure, write_successes
from offload.worker.pools import AsyncPool, ThreadPool
from offload.worker.progress_writes import ProgressWrites
from offload.worker.recycling import Recycling
from offload.worker.reporting import Reporter, WorkerStats, label
from offload.worker.task_metrics import OUTCOME_COUNTER, TaskMetrics
from offload.worker.titles import set_title
from offload.worker.wakeups import Wakeups, listen_plan

__all__ = ["Worker", "WorkerStats"]

logger = logging.getLogger("offload.worker")

# After a database error the loop waits, doubling from the first figure up to
# the second, then tries again on a fresh connection. A burst run gives up after
# BURST_DATABASE_ATTEMPTS failures in a row rather than wait forever.
DATABASE_BACKOFF_SECONDS = (0.1, 5.0)
BURST_DATABASE_ATTEMPTS = 5
# Deadlocks in a row retried at once before they count as database errors.
CONFLICT_RETRIES = 10

# On SQLite an idle worker checkpoints the write-ahead log once it has
# finished this many tasks since it last did: about 25 log pages a task
# (enqueue, claim, outcome), so a few hundred pages a time. After every task
# instead, each next enqueue restarted the emptied log and took 0.3 to 0.8 ms
# longer.
CHECKPOINT_TASKS = 10


class Worker:
    """Run tasks of one backend until stopped (or, in burst mode, until none are due)."""

    def __init__(self, config: WorkerConfig | None = None) -> None:
        config = config or WorkerConfig()
        self.config = config
        self.backend = get_backend(config.backend)
        options = self.backend.config
        self.queues = queue_filter(self.backend, config.queues, config.exclude_queues)
        self.worker_id = config.worker_id or make_worker_id(config.name)
        self.threads = config.threads
        self.stats = WorkerStats()
        # The private connection is opened by run(), in the thread that uses it.
        self.store = TaskStore(options.database)
        self.wakeups = Wakeups(
            self.queues, config.control_fd, self._on_control, listen=listen_plan(options)
        )
        self.claims = ClaimSizer(
            config.threads,
            config.async_concurrency,
            config.batch_size or options.claim_batch_size,
            config.max_tasks,
        )
        self.cpu_bound = CpuBound(config.cpu_bound_queues)
        self.recycling = Recycling(config.max_tasks, config.max_memory)
        self.reporter = Reporter(
            self.worker_id, config.threads, config.status_fd, config.process_title
        )
        # Counts for the supervisor's metrics port, only when it serves one.
        self.metrics = TaskMetrics() if config.metrics else None
        self.outbox = Outbox(self.wakeups.nudge)
        self.leases = Leases(
            Registration(
                self.worker_id, config.name or self.worker_id,
                config.supervisor_pid or os.getpid(), self.backend.alias,
                queue_label(self.queues), config.threads,
            ),
            options,
            self.reporter.tell,
            lambda: [*self.sync_pool.running(), *self.async_pool.running()],
        )  # fmt: skip
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._stop_deadline: float | None = None  # None: wait for running tasks (recycling)
        self._forced_why = "the stop was forced"  # for the history of what is given back
        self._finished = 0  # outcomes settled
        self._checkpointed_at = 0  # self._finished at the last idle checkpoint
        self._failures = self._conflicts = 0  # database errors, lock conflicts in a row
        self._gave_back_unstarted = False  # once stopping, the unstarted tasks went back
        self._compose_task_side(config, options)

    def _compose_task_side(self, config: WorkerConfig, options: Options) -> None:
        """The pools that run tasks, and what they report to."""
        # Successful sync outcomes are written behind their thread (see
        # worker.announcer), up to WRITE_BEHIND at once; 0: each thread waits.
        self._announcer = (
            Announcer(options.write_behind, "offload-announce")
            if options.write_behind and config.threads
            else None
        )
        # The latest unwritten progress of each running attempt; the first
        # report after a write wakes the dispatcher, the others do not.
        nudge = self.wakeups.nudge
        board = ProgressBoard(nudge)
        self.progress = ProgressWrites(board, options.progress_interval)
        run = Execution(
            self.worker_id, self.backend, self.outbox, self.leases, board,
            self.reporter.tell, self._announcer,
        )  # fmt: skip
        # Both pools wake the dispatcher once a slot is free (not when the
        # outcome is posted: the slot is still taken then).
        self.sync_pool = ThreadPool(config.threads, run.run_sync, "offload-task", nudge)
        self.async_pool = AsyncPool(config.async_concurrency, run.run_async, "offload-async", nudge)
        run.interrupted, run.after_sync = self.stop, self._after_sync_task
        run.settling = self.async_pool.settling
        if self.metrics is not None:
            run.on_start = self.metrics.started

    # -- stopping -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; let running tasks finish within the shutdown timeout.

        Safe to call from a signal handler or another thread.
        """
        # A stop during recycling gains the deadline that recycling goes without.
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.config.shutdown_timeout
        if self.stats.reason in ("", "recycled"):
            self.stats.reason = "stopped"
        self._stopping.set()
        self.wakeups.nudge()

    def force_stop(self, why: str = "the stop was forced") -> None:
        """Give every claimed task back now, running ones included, and return."""
        self._forced_why = why
        self.stats.reason = "forced"
        self._forced.set()
        self._stopping.set()
        self.wakeups.nudge()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully; a second one forces the stop."""

        def handle(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._stopping.is_set():
                logger.warning("Second %s: giving running tasks back and stopping now", name)
                self.force_stop(f"a second {name} forced the stop")
            else:
                logger.info("%s received: finishing running tasks, then stopping", name)
                self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _on_control(self, data: bytes) -> None:
        if not data:
            # The supervisor is gone (even SIGKILL closes its end of the pipe):
            # no task process may outlive it.
            logger.warning("Supervisor gone: giving tasks back and exiting")
            self.force_stop("its supervisor was gone")
        elif protocol.FORCE in data:
            self.force_stop("the supervisor forced the stop")
        elif protocol.STOP in data:
            self.stop()

    def _stop_why(self) -> str:
        if self._forced.is_set():
            return self._forced_why
        return f"still running when the shutdown timeout ({self.config.shutdown_timeout:g}s) passed"

    def _recycle(self, why: str) -> None:
        logger.info("Worker %s %s: finishing running tasks, then recycling", self.worker_id, why)
        self.stats.reason = "recycled"
        self._stop_deadline = None  # never cut a task short to recycle
        self._stopping.set()

    # -- the loop -------------------------------------------------------------------------

    def run(self, *, burst: bool = False) -> WorkerStats:
        """Work until stopped; with ``burst``, return once no task is due."""
        database = self.backend.config.database
        self.store = TaskStore(
            database,
            connection=open_private(database, session=not self.backend.config.transaction_pooler),
        )
        # -v 3: Django logs a connection's SQL (django.db.backends) only in
        # DEBUG or when asked, and the worker's connection is not DEBUG's.
        self.store.connection.force_debug_cursor = self.config.log_sql
        self.sync_pool.start()
        if self._announcer is not None:
            self._announcer.start()
        if self.config.process_title:
            set_title(f"worker {self.worker_id}: starting")
        try:
            self._dispatch(burst)
        finally:
            self._shutdown()
        return self.stats

    def _dispatch(self, burst: bool) -> None:
        looks = Looks(self.backend.config.poll_interval)
        while True:
            self.wakeups.new_round()  # what changes from here on ends the next wait
            try:
                if self._round(looks, burst):
                    return
            except DatabaseError as exc:
                if self._after_database_error(exc, looks, burst):
                    return

    def _round(self, looks: Looks, burst: bool) -> bool:
        """One look at everything; True once the worker should stop."""
        self._write_outcomes()
        if self._forced.is_set():
            return True
        self.stats.released += self.leases.keep_alive(self.store, time.monotonic())
        self.progress.write_due(self.store)
        if self._stopping.is_set():
            return self._wind_down()
        if self.wakeups.take_notified():
            looks.now_all()
        room = self.claims.room(self._load(), looks.drained(time.monotonic()))
        if room:
            return self._claim_round(looks, burst, *room)
        self._report()
        if not self._stopping.is_set():
            self._idle(looks)
        return False

    def _claim_round(self, looks: Looks, burst: bool, limit: int, kind: Kind | None) -> bool:
        """Claim up to ``limit`` tasks; True if a burst run found nothing left to do."""
        asked = (False, True) if kind is None else (kind,)
        batch = self._claim(limit, kind)
        self._failures = self._conflicts = 0
        looks.found({claimed.is_async for claimed in batch})
        if len(batch) == limit:
            return False  # more may be due right now
        # The next delayed task matters when nothing was found and the worker
        # is idle or has room for every kind; a busy worker comes back at its
        # next look or freed slot anyway.
        due = None
        if not batch and (kind is None or not self._busy()):
            due = self.store.seconds_until_due(self.queues)
        # An outcome not yet written may still promote a blocked task of its
        # concurrency key (store.gate): a burst run is not drained before.
        idle = not self._busy() and not len(self.outbox)
        if not batch and burst and idle and (due is None or due > 0):
            self.stats.reason = "drained"
            return True
        looks.came_short(asked, time.monotonic(), self.wakeups.listening, due)
        return False  # the other kind may still have room and tasks

    def _idle(self, looks: Looks) -> None:
        """Sleep: with room for something, until that kind's next look; with
        none, until a slot frees (the pools wake the dispatcher)."""
        timeout = self._until_due()
        if open_room := self.claims.room(self._load(), set()):
            timeout = min(timeout, max(0.0, looks.next_look(open_room[1]) - time.monotonic()))
        if not self._busy() and self._finished - self._checkpointed_at >= CHECKPOINT_TASKS:
            # Idle with work behind it: the log's pages are copied into the
            # database file here, off everyone's path, before an enqueue's
            # commit takes the log past SQLite's threshold and does it while
            # its caller waits (store.vendor).
            self._checkpointed_at = self._finished
            self.store.checkpoint()
        self.wakeups.wait(timeout)

    def _wind_down(self) -> bool:
        """A round while stopping: True once nothing runs or the deadline passed."""
        if not self._gave_back_unstarted:
            unstarted = self.sync_pool.take_unstarted() + self.async_pool.take_unstarted()
            self.stats.released += self.leases.give_back(self.store, unstarted, started=False)
            self._gave_back_unstarted = True
        if not self._busy():
            return True
        deadline = self._stop_deadline
        if deadline is not None and time.monotonic() >= deadline:
            logger.warning(
                "Shutdown timeout (%.0fs) reached with %d task(s) running: giving them back",
                self.config.shutdown_timeout, self._busy(),
            )  # fmt: skip
            return True
        wait = self._until_due()
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        self.wakeups.wait(wait)
        return False

    def _after_database_error(self, exc: DatabaseError, looks: Looks, burst: bool) -> bool:
        """Wait and reconnect after a database error; True if told to stop meanwhile."""
        if is_lock_conflict(exc) and self._conflicts < CONFLICT_RETRIES:
            # A deadlock victim: its transaction was rolled back, the
            # connection is fine. Try again at once, quietly.
            self._conflicts += 1
            logger.debug("Lock conflict (%s); trying again", exc)
            return False
        self._conflicts = 0
        # The server restarted, the connection dropped, a lock timed out: none
        # of that should end the worker. Claimed tasks keep their lease and
        # unwritten outcomes are kept for the next try.
        self._failures += 1
        if burst and self._failures >= BURST_DATABASE_ATTEMPTS:
            raise
        if self._forced.is_set():
            return True  # told to stop now: _shutdown gives back what it can
        first, most = DATABASE_BACKOFF_SECONDS
        delay = min(first * 2 ** (self._failures - 1), most)
        if self._failures == 1:
            logger.exception("Database error; retrying in %.1fs", delay)
        else:
            # The traceback was shown once; an outage of minutes should not
            # print hundreds of them.
            logger.error(
                "Database error again (%s: %s); retrying in %.1fs",
                type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc) else "", delay,
            )  # fmt: skip
        self.store.reset()
        self.wakeups.stop_listening()
        looks.now_all()  # notifications may have been missed meanwhile
        self.wakeups.wait(delay)
        return False

    def _busy(self) -> int:
        return self.sync_pool.load + self.async_pool.load

    def _load(self) -> Load:
        held = (self.sync_pool.load, self.async_pool.load, len(self.cpu_bound.held))
        return Load(self._finished, len(self.outbox), *held)

    def _until_due(self) -> float:
        """Seconds until the dispatcher must wake for a heartbeat, a progress
        write or a cancel deadline."""
        due = self.leases.next_due()
        if (progress_due := self.progress.due_at()) is not None:
            due = min(due, progress_due)
        return max(0.0, due - time.monotonic())

    def _claim(self, limit: int, kind: Kind | None) -> list[ClaimedTask]:
        self.store.prepare()
        self.wakeups.ensure_listening(self.store)
        batch = self.store.claim(
            self.worker_id,
            queues=self.queues,
            limit=limit,
            lease_seconds=self.backend.config.lease_seconds,
            is_async=kind,
        )
        split = self.cpu_bound.split(batch)
        self.claims.claimed(len(batch), split.cpu_bound)
        # Routed by the row's flag, set at enqueue: resolving each task here
        # as well as in the runner would double that work on the hot path. A
        # function that changed kind since still runs: Task.call drives a
        # coroutine with async_to_sync, Task.acall a plain function with
        # sync_to_async.
        for claimed in split.keep:
            self.leases.hold(claimed)
            (self.async_pool if claimed.is_async else self.sync_pool).submit(claimed)
        if split.passed:
            self.leases.pass_on(self.store, split.passed)
        return batch

    def _after_sync_task(self) -> None:
        # Memory is checked in the task's thread before it takes another: a
        # success written behind lets the thread start its next task before
        # the dispatcher settles this one, and a task that leaks would then
        # leak again in a process already over its limit.
        if not self._stopping.is_set() and (why := self.recycling.memory_over()):
            self.sync_pool.close()  # before this thread takes its next task
            self._recycle(why)
            self.wakeups.nudge()

    # -- writing outcomes (dispatcher only) -------------------------------------------------

    def _write_outcomes(self) -> None:
        """Write every posted outcome, then settle each."""
        unwritten = self.outbox.collect()
        if unwritten and self.progress.board:
            # A task's last report lands before its outcome (a retry or a
            # rescue must not find it older than what the task said).
            ending = [(posted.claimed.id, posted.claimed.attempt) for posted in unwritten]
            self.progress.write_ending(self.store, ending)
        while unwritten:
            # A DatabaseError here leaves the outcomes first in line for the next try.
            if successes := self.outbox.leading_successes():
                # Every success waiting is written by one statement: one commit
                # for all the outcomes that piled up during the last write.
                written = write_successes(self.store, successes)
                del unwritten[: len(successes)]
                ends: list[bytes] = []
                for posted in successes:
                    self._settle(posted, posted.claimed.id in written, ends)
                # The batch's "end" lines in as few writes as fit, not one per task.
                for lines in protocol.writes(ends):
                    self.reporter.tell(lines)
                continue
            posted = unwritten[0]
            if posted.outcome is None:
                given = self.leases.give_back(
                    self.store,
                    [posted.claimed],
                    started=True,
                    why="interrupted (Ctrl-C) in the task",
                )
                self.stats.released += given
                unwritten.pop(0)
                self._ended(posted.claimed)
                posted.reply.set_result(False)
                continue
            written_one = write_failure(self.store, posted)
            unwritten.pop(0)
            self._settle(posted, written_one)

    def _settle(self, posted: Posted, written: bool, ends: list[bytes] | None = None) -> None:
        """Account for an outcome the store took (``written``) or refused as stale,
        and answer its reply (its ``end`` line goes in ``ends`` if given, see ``_ended``)."""
        claimed, outcome = posted.claimed, posted.outcome
        assert outcome is not None
        self.leases.drop(claimed.id)
        self.stats.count(outcome, written)
        if written and self.metrics is not None:
            self.metrics.settled(claimed, OUTCOME_COUNTER[label(outcome)], posted.elapsed)
        if not written:
            logger.warning(
                "task id=%s attempt=%s: outcome dropped, a newer attempt holds the task",
                claimed.id, claimed.attempt,
            )  # fmt: skip
        self._ended(claimed, ends)
        posted.reply.set_result(written)
        self._finished += 1
        self.claims.timed(claimed.is_async, posted.elapsed)
        if self._stopping.is_set():
            return
        if why := self.recycling.after_settled(self._finished, claimed.is_async):
            self._recycle(why)

    def _ended(self, claimed: ClaimedTask, ends: list[bytes] | None = None) -> None:
        """Forget ``claimed``'s attempt; its ``end`` line is sent now, or put in
        ``ends`` for the caller to send with the others of its batch."""
        self.leases.ended(claimed)
        self.cpu_bound.ended(claimed.id)
        line = protocol.task_line("end", claimed.id, claimed.attempt)
        if ends is None:
            self.reporter.tell(line)
        else:
            ends.append(line)

    # -- reporting and shutting down ----------------------------------------------------------

    def _report(self, force: bool = False) -> None:
        if not self.reporter.due(force):
            return
        state = "stopping" if self._stopping.is_set() else "idle" if not self._busy() else "busy"
        self.reporter.report(
            state, self.stats, self.sync_pool.occupancy(), self.async_pool.occupancy()
        )
        if self.metrics is not None:
            for lines in protocol.writes(self.metrics.lines()):
                self.reporter.tell(lines)

    def _shutdown(self) -> None:
        """Write what finished, give back what did not, and close."""
        try:
            # Closed first: every outcome is then in the outbox (and written
            # below) or refused at once; none can slip in unsettled.
            self.outbox.close()
            try:
                self._write_outcomes()
            except DatabaseError:
                logger.exception("Could not record %d finished task(s)", len(self.outbox.unwritten))
            unstarted = self.sync_pool.take_unstarted() + self.async_pool.take_unstarted()
            leftover = [*unstarted, *self.sync_pool.running(), *self.async_pool.running()]
            try:
                self.stats.released += self.leases.give_back(self.store, unstarted, started=False)
                self.stats.released += self.leases.give_back(
                    self.store, leftover[len(unstarted) :], started=True, why=self._stop_why()
                )
            except DatabaseError:
                logger.exception(
                    "Could not give back %d task(s); they return when their lease expires",
                    len(leftover),
                )
            self.outbox.refuse_unwritten()
            # Every reply is answered: tasks that were settling end at once.
            self.async_pool.finish_settling(timeout=1.0)
            self.async_pool.cancel_all()
            self.sync_pool.stop()
            if self._announcer is not None:
                # Every reply is answered: this only sends the last signals.
                self._announcer.stop(timeout=5.0)
            with contextlib.suppress(DatabaseError):
                self.leases.forget_worker(self.store)
            self._report(force=True)
        finally:
            self.outbox.close()
            self.async_pool.stop(timeout=1.0)
            if not self._busy():
                self.sync_pool.join(timeout=1.0)
            self.close()
            self.wakeups.close()

    def close(self) -> None:
        """Close the worker's private connection."""
        if self.store.connection is not connections[self.store.alias]:
            self.store.connection.close()
        self.wakeups.close_sources()
