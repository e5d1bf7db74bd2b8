"""One worker process: a dispatcher that claims tasks and records their outcomes,
threads for sync tasks and an event loop for ``async def`` ones.

The dispatcher (the thread that calls ``run()``) is the only user of the
worker's private database connection: it claims, writes every outcome, gives
tasks back and, on PostgreSQL, LISTENs for new tasks. Tasks hand their outcome
to it through an outbox and wait until it is written, so ``task_finished`` is
still sent after the fenced write. It sleeps in one ``select()`` on a wake-up
pipe (outcomes, freed slots, stop requests), the supervisor's control pipe and
the LISTEN socket, so an idle worker costs almost nothing and wakes at once.

Progress that tasks report goes on a board in memory (``offload.progress``);
the dispatcher writes what changed at most every ``PROGRESS_INTERVAL`` seconds,
in one statement, and a task's last report before its outcome.

How much to claim: a process never claims more than it can start. For sync
tasks that is one per free thread, or, when recent tasks were short, what the
threads can start within ``CLAIM_HORIZON_SECONDS`` (tiny tasks are claimed in
full batches, one statement for many); for async tasks, the free room under the
async limit. When only one kind has room, the claim asks for that kind only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.db import DatabaseError, close_old_connections, connections
from django.tasks import task_backends

from offload.backend import DatabaseBackend
from offload.exceptions import BackendMisconfigured
from offload.payload import encode
from offload.progress import Progress, ProgressBoard
from offload.store import ALL_QUEUES, ClaimedTask, QueueFilter, TaskStore
from offload.store.connection import open_private
from offload.store.tasks import NOTIFY_CHANNEL
from offload.store.vendor import is_lock_conflict
from offload.store.wakeup import WakeSocket, wake_key
from offload.worker import protocol, runner
from offload.worker.announcer import Announcer
from offload.worker.identity import make_worker_id
from offload.worker.memory import resident_bytes
from offload.worker.pools import AsyncPool, ThreadPool
from offload.worker.titles import set_title

logger = logging.getLogger("offload.worker")

# A claimed task is RUNNING (its start stamped, no other worker can take it)
# from the claim on, so a worker claims only what it expects to start within
# this many seconds, judged by how long its recent tasks took.
CLAIM_HORIZON_SECONDS = 0.1

# After a database error the loop waits, doubling from the first figure up to
# the second, then tries again on a fresh connection. A burst run gives up after
# BURST_DATABASE_ATTEMPTS failures in a row rather than wait forever.
DATABASE_BACKOFF_SECONDS = (0.1, 5.0)
BURST_DATABASE_ATTEMPTS = 5
# Deadlocks in a row retried at once before they count as database errors.
CONFLICT_RETRIES = 10

# Where no LISTEN/NOTIFY is available, an idle worker looks for due tasks after
# this many seconds, doubling each time it finds none, up to POLL_INTERVAL: a
# worker that just ran something reacts within milliseconds, a long-idle one
# costs one cheap read per POLL_INTERVAL.
FIRST_POLL_SECONDS = 0.02

# How often the process title and the supervisor's figures are refreshed.
REPORT_SECONDS = 0.25

# On SQLite an idle worker checkpoints the write-ahead log once it has
# finished this many tasks since it last did: about 25 log pages a task
# (enqueue, claim, outcome), so a few hundred pages a time. After every task
# instead, each next enqueue restarted the emptied log and took 0.3 to 0.8 ms
# longer.
CHECKPOINT_TASKS = 10

# The most successes written by one statement: past a few hundred the statement
# (a CASE per row on SQLite and MariaDB) costs more to parse than a commit.
COMPLETE_BATCH_SIZE = 200


# An outcome on its way from a task to the dispatcher: the task, its outcome
# (None: give it back), how long it ran, and where to say whether it was written.
class Settles(Protocol):
    """Told whether an outcome was written: a Future, or a success's Pending."""

    def done(self) -> bool: ...
    def set_result(self, result: bool) -> None: ...


_Handed = tuple[ClaimedTask, runner.Outcome | None, float, Settles]


@dataclass
class WorkerStats(protocol.Counts):
    # Why run() returned: drained (burst), stopped, forced, recycled.
    reason: str = ""


def get_backend(alias: str) -> DatabaseBackend:
    try:
        backend = task_backends[alias]
    except Exception as exc:  # InvalidTaskBackend, with Django's message
        raise BackendMisconfigured(str(exc)) from exc
    if not isinstance(backend, DatabaseBackend):
        raise BackendMisconfigured(
            f"TASKS[{alias!r}] uses {type(backend).__module__}.{type(backend).__qualname__}; "
            "the offload worker runs tasks of offload.backend.DatabaseBackend only."
        )
    backend.ensure_usable()
    return backend


def queue_filter(
    backend: DatabaseBackend, only: Sequence[str] | None, excluded: Sequence[str] = ()
) -> QueueFilter:
    """The queues a worker takes tasks from, checked against the backend's QUEUES."""
    declared = backend.queues
    named = [*(only or ()), *excluded]
    unknown = sorted(set(named) - declared) if declared else []
    if unknown:
        raise BackendMisconfigured(
            f"Queue(s) {', '.join(map(repr, unknown))} are not in TASKS[{backend.alias!r}]"
            f"['QUEUES'] ({', '.join(sorted(declared))})."
        )
    if only is not None:
        chosen = tuple(q for q in dict.fromkeys(only) if q not in excluded)
    elif excluded and declared:
        # Turn "all but these" into an explicit list: the claim index then gets
        # equality on the queue instead of a NOT IN scan.
        chosen = tuple(sorted(declared - set(excluded)))
    else:
        return QueueFilter(None, tuple(excluded)) if excluded else ALL_QUEUES
    if not chosen:
        raise BackendMisconfigured("Every queue is excluded: this worker would never run anything.")
    return QueueFilter(chosen)


class Worker:
    """Run tasks of one backend until stopped (or, in burst mode, until none are due)."""

    def __init__(
        self,
        backend_alias: str = "default",
        *,
        queues: Sequence[str] | None = None,
        exclude_queues: Sequence[str] = (),
        name: str | None = None,
        worker_id: str | None = None,
        threads: int = 1,
        async_concurrency: int = 100,
        batch_size: int | None = None,
        max_tasks: int | None = None,
        max_memory: int | None = None,
        shutdown_timeout: float = 25.0,
        control_fd: int | None = None,
        status_fd: int | None = None,
        log_sql: bool = False,
        supervisor_pid: int | None = None,
    ) -> None:
        self.backend = get_backend(backend_alias)
        config = self.backend.config
        self.queues = queue_filter(self.backend, queues, exclude_queues)
        self.worker_id = worker_id or make_worker_id(name)
        self.threads = threads
        self.batch_size = batch_size or config.claim_batch_size
        self.max_tasks = max_tasks
        self.max_memory = max_memory
        self.shutdown_timeout = shutdown_timeout
        self.stats = WorkerStats()
        # The private connection is opened by run(), in the thread that uses it.
        self.store = TaskStore(config.database)
        self._control_fd = control_fd
        self._status_fd = status_fd
        self._log_sql = log_sql

        # Both pools wake the dispatcher once a slot is free (not when the
        # outcome is posted: the slot is still taken then).
        self._threads = ThreadPool(threads, self._run_sync, "offload-task", self._wake)
        self._async = AsyncPool(async_concurrency, self._run_async, "offload-async", self._wake)
        self._outbox: queue.SimpleQueue[_Handed] = queue.SimpleQueue()
        self._unwritten: list[_Handed] = []
        # Dispatcher only: every task claimed and not yet settled or given
        # back, id -> attempt (see _give_back_orphans).
        self._held: dict[int, int] = {}
        # Successful sync outcomes are written behind their thread (see
        # worker.announcer), up to WRITE_BEHIND at once; 0: each thread waits.
        self._announcer = (
            Announcer(config.write_behind, "offload-announce")
            if config.write_behind and threads
            else None
        )
        self._closed = False  # set when run() ends: late outcomes are refused
        self._post_lock = threading.Lock()
        # Whether the dispatcher sleeps (or is about to), and whether anything
        # changed since its loop last looked (see _wake).
        self._asleep = False
        self._nudged = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._stop_deadline: float | None = None  # None: wait for running tasks (recycling)
        self._notified = False
        self._listening_on: object = None  # the DB-API connection we LISTEN on
        self._wake_socket: WakeSocket | None = None  # engines without LISTEN
        self._wake_socket_failed = False
        self._mean_task_seconds: float | None = None  # moving average; None: none run yet
        self._mean_async_seconds: float | None = None  # the same for async tasks
        self._finished = 0
        self._checkpointed_at = 0  # self._finished at the last idle checkpoint
        self._last_report = 0.0
        self._supervisor_pid = supervisor_pid or os.getpid()
        self._name = name or self.worker_id
        self._registered = False  # the worker row exists (written with the first heartbeat)
        self._next_heartbeat = 0.0
        # Per started task: the event its context reads, and, once a cancel was
        # requested, when it is stopped by force if still running.
        self._cancel_events: dict[int, threading.Event] = {}
        self._cancel_deadlines: dict[int, tuple[float, ClaimedTask]] = {}
        self._events_lock = threading.Lock()
        # The latest unwritten progress of each running attempt; the first
        # report after a write wakes the dispatcher, the others do not.
        self._progress = ProgressBoard(self._wake)
        self._next_progress_write = 0.0

    # -- stopping -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; let running tasks finish within the shutdown timeout.

        Safe to call from a signal handler or another thread.
        """
        # A stop during recycling gains the deadline that recycling goes without.
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.shutdown_timeout
        if self.stats.reason in ("", "recycled"):
            self.stats.reason = "stopped"
        self._stopping.set()
        self._wake()

    def force_stop(self) -> None:
        """Give every claimed task back now, running ones included, and return."""
        self.stats.reason = "forced"
        self._forced.set()
        self._stopping.set()
        self._wake()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully; a second one forces the stop."""

        def handle(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._stopping.is_set():
                logger.warning("Second %s: giving running tasks back and stopping now", name)
                self.force_stop()
            else:
                logger.info("%s received: finishing running tasks, then stopping", name)
                self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _wake(self) -> None:
        """Tell the dispatcher something changed: an outcome, a free slot, a stop.

        Only a dispatcher that sleeps (or is about to) needs the pipe; a busy
        one sees the change when its loop looks again. The pipe write is a
        system call per outcome and per free slot, and a thread that makes one
        gives up the interpreter lock and must win it back. The flags are read
        and written under the lock, in opposite orders on the two sides (see
        ``_wait``), so a change is never missed.
        """
        self._nudged = True
        if self._asleep:
            # A full pipe means a wake-up is pending anyway; a closed one, that run() ended.
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"w")

    # -- running ----------------------------------------------------------------------

    def run(self, *, burst: bool = False) -> WorkerStats:
        """Work until stopped; with ``burst``, return once no task is due."""
        database = self.backend.config.database
        self.store = TaskStore(database, connection=open_private(database))
        # -v 3: Django logs a connection's SQL (django.db.backends) only in
        # DEBUG or when asked, and the worker's connection is not DEBUG's.
        self.store.connection.force_debug_cursor = self._log_sql
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self._control_fd is not None:
            self._selector.register(self._control_fd, selectors.EVENT_READ, "control")
        self._threads.start()
        if self._announcer is not None:
            self._announcer.start()
        set_title(f"worker {self.worker_id}: starting")
        try:
            self._dispatch(burst)
        finally:
            self._shutdown()
        return self.stats

    def _dispatch(self, burst: bool) -> None:
        config = self.backend.config
        failures = conflicts = 0
        # Per kind of task (False: sync, True: async), the monotonic time of
        # the next look for due tasks and the current polling step. A kind
        # whose last claim found fewer than it asked for is "drained" until its
        # look is due: a freed slot of that kind does not send the worker back
        # to the database before then. Each kind backs off on its own, because
        # a claim for one kind only has to read past every ready task of the
        # other: with a sync backlog and no async tasks, an async claim every
        # 20 ms (the first step, kept short by the sync claims' success) cost
        # more than the sync work itself.
        look_at = {False: 0.0, True: 0.0}
        polls = {False: FIRST_POLL_SECONDS, True: FIRST_POLL_SECONDS}
        gave_back_unstarted = False
        while True:
            self._nudged = False  # what changes from here on wakes _wait (see _wake)
            try:
                self._write_outcomes()
                if self._forced.is_set():
                    return
                self._keep_alive()
                self._write_progress()
                if self._stopping.is_set():
                    if not gave_back_unstarted:
                        unstarted = self._threads.take_unstarted() + self._async.take_unstarted()
                        self._release(unstarted, started=False)
                        gave_back_unstarted = True
                    if not self._busy():
                        return
                    deadline = self._stop_deadline
                    if deadline is not None and time.monotonic() >= deadline:
                        logger.warning(
                            "Shutdown timeout (%.0fs) reached with %d task(s) running: "
                            "giving them back", self.shutdown_timeout, self._busy(),
                        )  # fmt: skip
                        return
                    wait = self._until_heartbeat()
                    if deadline is not None:
                        wait = min(wait, deadline - time.monotonic())
                    self._wait(wait)
                    continue

                if self._notified:
                    self._notified = False
                    look_at = {False: 0.0, True: 0.0}
                now = time.monotonic()
                room = self._room({kind for kind, at in look_at.items() if now < at})
                if room:
                    limit, kind = room
                    asked = (False, True) if kind is None else (kind,)
                    batch = self._claim(limit, kind)
                    failures = conflicts = 0
                    for found in {claimed.is_async for claimed in batch}:
                        polls[found] = FIRST_POLL_SECONDS
                    if len(batch) == limit:
                        continue  # more may be due right now
                    # The next delayed task matters when nothing was found and
                    # the worker is idle or has room for every kind; a busy
                    # worker comes back at its next look or freed slot anyway.
                    due = None
                    if not batch and (kind is None or not self._busy()):
                        due = self.store.seconds_until_due(self.queues)
                    if not batch and burst and not self._busy() and (due is None or due > 0):
                        self.stats.reason = "drained"
                        return
                    now = time.monotonic()
                    for each in asked:
                        wait = config.poll_interval if self._listening_on else polls[each]
                        if due is not None and due > 0:
                            # Wake when the next delayed task is due, not a poll later.
                            wait = min(wait, due)
                        look_at[each] = now + wait
                        polls[each] = min(polls[each] * 2, config.poll_interval)
                    continue  # the other kind may still have room and tasks
                self._report()
                if self._stopping.is_set():
                    continue
                # With room for something, sleep until that kind's next look;
                # with none, until a slot frees (the pools wake the dispatcher).
                timeout = self._until_heartbeat()
                if open_room := self._room(set()):
                    kinds = (False, True) if open_room[1] is None else (open_room[1],)
                    next_look = min(look_at[each] for each in kinds)
                    timeout = min(timeout, max(0.0, next_look - time.monotonic()))
                if not self._busy() and self._finished - self._checkpointed_at >= CHECKPOINT_TASKS:
                    # Idle with work behind it: the log's pages are copied into
                    # the database file here, off everyone's path, before an
                    # enqueue's commit takes the log past SQLite's threshold
                    # and does it while its caller waits (store.vendor).
                    self._checkpointed_at = self._finished
                    self.store.checkpoint()
                self._wait(timeout)
            except DatabaseError as exc:
                if is_lock_conflict(exc) and conflicts < CONFLICT_RETRIES:
                    # A deadlock victim: its transaction was rolled back, the
                    # connection is fine. Try again at once, quietly.
                    conflicts += 1
                    logger.debug("Lock conflict (%s); trying again", exc)
                    continue
                conflicts = 0
                # The server restarted, the connection dropped, a lock timed out:
                # none of that should end the worker. Claimed tasks keep their
                # lease and unwritten outcomes are kept for the next try.
                failures += 1
                if burst and failures >= BURST_DATABASE_ATTEMPTS:
                    raise
                if self._forced.is_set():
                    return  # told to stop now: _shutdown gives back what it can
                delay = min(DATABASE_BACKOFF_SECONDS[0] * 2 ** (failures - 1),
                            DATABASE_BACKOFF_SECONDS[1])  # fmt: skip
                if failures == 1:
                    logger.exception("Database error; retrying in %.1fs", delay)
                else:
                    # The traceback was shown once; an outage of minutes should
                    # not print hundreds of them.
                    logger.error(
                        "Database error again (%s: %s); retrying in %.1fs",
                        type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc) else "",
                        delay,
                    )  # fmt: skip
                self.store.reset()
                self._stop_listening()
                look_at = {False: 0.0, True: 0.0}  # notifications may have been missed meanwhile
                self._wait(delay)

    def _busy(self) -> int:
        return self._threads.load + self._async.load

    def _unrecorded(self) -> int:
        """Outcomes handed over and not written yet (the dispatcher writes them next)."""
        return self._outbox.qsize() + len(self._unwritten)

    def _room(self, drained: set[bool]) -> tuple[int, bool | None] | None:
        """How many tasks to claim now and of which kind (None: either), or None.

        ``drained`` holds the kinds not worth asking for until the next look.
        """
        # Outcomes on their way count as finished: a thread that handed one
        # over is free before the dispatcher has written it.
        done = self._finished + self._unrecorded()
        if self.max_tasks is not None and done + self._busy() >= self.max_tasks:
            return None
        target, load = self._sync_target(), self._threads.load
        sync_room = 0 if False in drained else target - load
        if load >= self.threads and load > target // 2:
            # Every thread is busy and at least half the prefetched tasks are
            # still waiting: topping up one at a time would cost a claim per
            # task. Refill in one statement once half of them have started.
            sync_room = 0
        async_room = 0 if True in drained else self._async_target() - self._async.load
        if sync_room > 0 and async_room > 0:
            # Either kind may come back, so ask for no more than both can take.
            limit, kind = min(sync_room, async_room), None
        elif sync_room > 0:
            limit, kind = sync_room, False
        elif async_room > 0:
            limit, kind = async_room, True
        else:
            return None
        if self.max_tasks is not None:
            limit = min(limit, self.max_tasks - done - self._busy())
        return min(limit, max(self.batch_size, self.threads)), kind

    def _sync_target(self) -> int:
        """Sync tasks to hold at once: one per thread, more per thread when tasks are tiny."""
        if self._mean_task_seconds is None:
            return self.threads  # nothing known yet: the first tasks could be slow
        fits = int(CLAIM_HORIZON_SECONDS / max(self._mean_task_seconds, 1e-6))
        return self.threads * max(1, min(self.batch_size, fits))

    def _async_target(self) -> int:
        """Async tasks to hold at once: the limit, plus up to a claim's worth
        waiting for a slot when recent async tasks were short, so a slot that
        frees starts one at once (a wave of short tasks ending together would
        otherwise wait for a claim each)."""
        limit = self._async.limit
        mean = self._mean_async_seconds
        if mean is None or mean * min(limit, self.batch_size) > CLAIM_HORIZON_SECONDS * limit:
            return limit  # what waits must start within the claim horizon
        return limit + min(limit, self.batch_size)

    def claim_limit(self) -> int:
        """How many sync tasks one thread holds now (what fits in the claim horizon)."""
        return self._sync_target() // self.threads

    def _claim(self, limit: int, kind: bool | None) -> list[ClaimedTask]:
        self.store.prepare()
        self._ensure_listening()
        batch = self.store.claim(
            self.worker_id,
            queues=self.queues,
            limit=limit,
            lease_seconds=self.backend.config.lease_seconds,
            is_async=kind,
        )
        # Routed by the row's flag, set at enqueue: resolving each task here
        # as well as in the runner would double that work on the hot path. A
        # function that changed kind since still runs: Task.call drives a
        # coroutine with async_to_sync, Task.acall a plain function with
        # sync_to_async.
        for claimed in batch:
            self._held[claimed.id] = claimed.attempt
            (self._async if claimed.is_async else self._threads).submit(claimed)
        return batch

    # -- waiting and waking ---------------------------------------------------------------

    def _ensure_listening(self) -> None:
        """On PostgreSQL, LISTEN on the worker's connection (again after a reconnect);
        elsewhere, open this process's local wake-up socket (see ``store.wakeup``)."""
        connection = self.store.connection
        if connection.vendor != "postgresql":
            if self._wake_socket is None and not self._wake_socket_failed:
                self._open_wake_socket()
            return
        connection.ensure_connection()
        raw = connection.connection
        if raw is None or raw is self._listening_on:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
        # Notifications that arrive while a query runs are handed to this
        # handler by psycopg; the ones that arrive while idle are read in _wait.
        raw.add_notify_handler(lambda notify: self._on_notify(notify.payload))
        self._stop_listening()
        self._selector.register(raw.fileno(), selectors.EVENT_READ, "listen")
        self._listening_on = raw

    def _open_wake_socket(self) -> None:
        connection = self.store.connection
        try:
            self._wake_socket = WakeSocket(wake_key(connection.settings_dict, connection.vendor))
        except OSError as exc:
            # Polling alone still finds every task, a little later.
            self._wake_socket_failed = True
            logger.warning("No local wake-up socket (%s); polling only", exc)
            return
        self._selector.register(self._wake_socket.fileno(), selectors.EVENT_READ, "local")

    def _stop_listening(self) -> None:
        # By the registered key, not raw.fileno(): a broken connection has none.
        for key in list(self._selector.get_map().values()):
            if key.data == "listen":
                self._selector.unregister(key.fileobj)
        self._listening_on = None

    def _on_notify(self, queue_name: str) -> None:
        if self.queues.allows(queue_name):
            self._notified = True

    def _wait(self, timeout: float | None) -> None:
        if self._notified:
            return
        self._asleep = True
        try:
            # A change since this round of the loop began may have skipped the
            # pipe (the dispatcher was not asleep yet): look again at once.
            self._select(0 if self._nudged else timeout)
        finally:
            self._asleep = False

    def _select(self, timeout: float | None) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data == "wake":
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            elif key.data == "control" and self._control_fd is not None:
                self._on_control(self._control_fd, os.read(self._control_fd, 64))
            elif key.data == "listen":
                self._read_notifications()
            elif key.data == "local" and self._wake_socket is not None:
                queues = self._wake_socket.read()
                if queues is None or any(map(self.queues.allows, queues)):
                    self._notified = True

    def _read_notifications(self) -> None:
        raw: Any = self._listening_on
        if raw is None:
            return
        try:
            raw.pgconn.consume_input()
            while (notify := raw.pgconn.notifies()) is not None:
                self._on_notify(notify.extra.decode())
        except Exception:
            # The connection broke while idle: drop it; the next claim reconnects.
            logger.warning("Lost the LISTEN connection; reconnecting", exc_info=True)
            self._stop_listening()
            self.store.reset()
            self._notified = True

    def _on_control(self, fd: int, data: bytes) -> None:
        if not data:
            # The supervisor is gone (even SIGKILL closes its end of the pipe):
            # no task process may outlive it.
            logger.warning("Supervisor gone: giving tasks back and exiting")
            self._selector.unregister(fd)
            self.force_stop()
        elif protocol.FORCE in data:
            self.force_stop()
        elif protocol.STOP in data:
            self.stop()

    # -- running tasks (pool threads and the event loop) -------------------------------------

    def _run_sync(self, claimed: ClaimedTask) -> None:
        begun = time.monotonic()
        cancel = self._started(claimed)
        try:
            outcome = runner.run(
                claimed,
                self.worker_id,
                lambda o: self._hand_over(claimed, o, begun),
                cancel,
                self._progress_sink(claimed),
                record_behind=None if self._announcer is None else self._behind(claimed, begun),
                backend=self.backend,
            )
        except (runner.WorkerInterrupted, KeyboardInterrupt):
            # Ctrl-C raised inside the task (an embedded worker with no signal
            # handlers): not the task's failure. Give it back and stop.
            self._post(claimed, None, begun)
            self.stop()
            return
        self._log(claimed, outcome, time.monotonic() - begun)
        # Memory is checked here, in the task's thread before it takes another:
        # a success written behind lets the thread start its next task before
        # the dispatcher settles this one, and a task that leaks would then
        # leak again in a process already over its limit.
        if not self._stopping.is_set() and (why := self._memory_over()):
            self._threads.close()  # before this thread takes its next task
            self._recycle(why)
            self._wake()

    async def _run_async(self, claimed: ClaimedTask) -> None:
        begun = time.monotonic()
        cancel = self._started(claimed)

        async def record(outcome: runner.Outcome) -> bool:
            future = self._post(claimed, outcome, begun)
            # The task is done with its slot: the next one can be claimed while
            # this outcome is written (it is then announced from here).
            self._async.settling(claimed)
            return await asyncio.wrap_future(future)

        # Each async task gets its own thread for the sync parts of Django it
        # calls (the ORM), as each request does under ASGI, and that thread's
        # connections are cleaned up after it the same way. asgiref starts the
        # thread on the first such call only; a task that makes none (pure
        # async I/O) must not pay for one just to clean up after it: two
        # thread starts per task on the event loop cost a quarter of a drain
        # of 20 ms async sleeps.
        async with ThreadSensitiveContext() as context:
            try:
                outcome = await runner.arun(
                    claimed,
                    self.worker_id,
                    record,
                    cancel,
                    self._progress_sink(claimed),
                    backend=self.backend,
                )
            finally:
                if _has_sync_thread(context):
                    await sync_to_async(close_old_connections)()
        self._log(claimed, outcome, time.monotonic() - begun)

    def _started(self, claimed: ClaimedTask) -> threading.Event:
        """Note that ``claimed`` starts now (before its code runs); return its cancel event."""
        with self._events_lock:
            cancel = self._cancel_events.setdefault(claimed.id, threading.Event())
        self._tell(protocol.task_line("start", claimed.id, claimed.attempt, claimed.timeout))
        return cancel

    def _progress_sink(self, claimed: ClaimedTask) -> Callable[[Progress], None]:
        """Where ``claimed``'s context puts its reports: the board, under its attempt."""
        key = (claimed.id, claimed.attempt)
        return lambda progress: self._progress.report(key, progress)

    def _tell(self, lines: bytes) -> None:
        """Send task lines (``protocol.task_line``) to the supervisor."""
        if self._status_fd is not None and lines:
            with contextlib.suppress(OSError):  # the supervisor is gone: the control pipe says so
                os.write(self._status_fd, lines)

    def _ended(self, claimed: ClaimedTask, ends: list[bytes] | None = None) -> None:
        """Forget ``claimed``'s attempt; its ``end`` line is sent now, or put in
        ``ends`` for the caller to send with the others of its batch."""
        with self._events_lock:
            self._cancel_events.pop(claimed.id, None)
        self._cancel_deadlines.pop(claimed.id, None)
        line = protocol.task_line("end", claimed.id, claimed.attempt)
        if ends is None:
            self._tell(line)
        else:
            ends.append(line)

    def _hand_over(self, claimed: ClaimedTask, outcome: runner.Outcome, begun: float) -> bool:
        return self._post(claimed, outcome, begun).result()

    def _behind(self, claimed: ClaimedTask, begun: float) -> runner.BehindRecorder:
        announcer = self._announcer
        assert announcer is not None

        def record_behind(outcome: runner.Outcome, announce: Callable[[], None]) -> None:
            # Told before the outcome is posted, so before its "end": should
            # the process die before the write, the supervisor gives the task
            # back without blaming it for the death.
            self._tell(protocol.task_line("done", claimed.id, claimed.attempt))
            announcer.hand(lambda pending: self._put(claimed, outcome, begun, pending), announce)

        return record_behind

    def _post(
        self, claimed: ClaimedTask, outcome: runner.Outcome | None, begun: float
    ) -> Future[bool]:
        """Hand an outcome to the dispatcher (None: give the task back
        unfinished); the Future says whether it was written."""
        future: Future[bool] = Future()
        self._put(claimed, outcome, begun, future)
        return future

    def _put(
        self,
        claimed: ClaimedTask,
        outcome: runner.Outcome | None,
        begun: float,
        settles: Settles,
    ) -> None:
        """Put an outcome in the dispatcher's outbox; ``settles`` learns whether it was written."""
        with self._post_lock:
            if self._closed:
                settles.set_result(False)  # the task was given back; this outcome is stale
                return
            self._outbox.put((claimed, outcome, time.monotonic() - begun, settles))
        self._wake()

    def _log(self, claimed: ClaimedTask, outcome: runner.Outcome, elapsed: float) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return  # -v 0: skip building the fields, once per task
        logger.info(
            "task id=%s path=%s queue=%s attempt=%s duration=%.3fs outcome=%s",
            claimed.id, claimed.task_path, claimed.queue_name, claimed.attempt, elapsed,
            _label(outcome),
            extra={
                "task_id": claimed.id, "task_path": claimed.task_path,
                "queue": claimed.queue_name, "attempt": claimed.attempt,
                "duration": round(elapsed, 6),
                "outcome": _label(outcome),
                "worker_id": self.worker_id,
            },
        )  # fmt: skip

    # -- writing outcomes (dispatcher only) -------------------------------------------------

    def _write_outcomes(self) -> None:
        while True:
            try:
                self._unwritten.append(self._outbox.get_nowait())
            except queue.Empty:
                break
        if self._unwritten and self._progress:
            # A task's last report lands before its outcome (a retry or a
            # rescue must not find it older than what the task said).
            ending = [(claimed.id, claimed.attempt) for claimed, *_ in self._unwritten]
            self._put_progress(self._progress.take(ending))
        while self._unwritten:
            # A DatabaseError here leaves the outcomes first in line for the next try.
            successes = list(
                itertools.takewhile(
                    lambda handed: handed[1] is not None and handed[1].succeeded,
                    itertools.islice(self._unwritten, COMPLETE_BATCH_SIZE),
                )
            )
            if successes:
                # Every success waiting is written by one statement: one commit
                # for all the outcomes that piled up during the last write.
                self.store.prepare()
                written = self.store.complete_many(
                    [(c.id, c.attempt, o.return_json or "null") for c, o, *_ in successes if o]
                )
                del self._unwritten[: len(successes)]
                ends: list[bytes] = []
                for handed in successes:
                    self._settle(handed, handed[0].id in written, ends)
                # The batch's "end" lines in as few writes as fit, not one per task.
                for lines in protocol.writes(ends):
                    self._tell(lines)
                continue
            claimed, outcome, _, future = handed = self._unwritten[0]
            if outcome is None:
                self._release([claimed], started=True)
                self._unwritten.pop(0)
                self._ended(claimed)
                future.set_result(False)
                continue
            written_one = self._record(claimed, outcome)
            self._unwritten.pop(0)
            self._settle(handed, written_one)

    def _settle(self, handed: _Handed, written: bool, ends: list[bytes] | None = None) -> None:
        """Account for an outcome the store took (``written``) or refused as stale
        (its ``end`` line goes in ``ends`` if given, see ``_ended``)."""
        claimed, outcome, elapsed, future = handed
        assert outcome is not None
        self._held.pop(claimed.id, None)
        if not written:
            self.stats.stale += 1
            logger.warning(
                "task id=%s attempt=%s: outcome dropped, a newer attempt holds the task",
                claimed.id, claimed.attempt,
            )  # fmt: skip
        elif outcome.succeeded:
            self.stats.succeeded += 1
        elif outcome.cancelled:
            self.stats.cancelled += 1
        elif outcome.retry_in is not None:
            self.stats.retried += 1
        else:
            self.stats.failed += 1
        self._ended(claimed, ends)
        future.set_result(written)
        self._finished += 1
        if claimed.is_async:
            previous = self._mean_async_seconds
            self._mean_async_seconds = (
                elapsed if previous is None else 0.7 * previous + 0.3 * elapsed
            )
        else:
            previous = self._mean_task_seconds
            self._mean_task_seconds = (
                elapsed if previous is None else 0.7 * previous + 0.3 * elapsed
            )
        self._check_recycling(claimed)

    def _record(self, claimed: ClaimedTask, outcome: runner.Outcome) -> bool:
        """Write one outcome that is not a success (those go in batches)."""
        assert not outcome.succeeded, "successes are written by complete_many"
        self.store.prepare()
        if outcome.cancelled:
            error = encode(outcome.errors[-1], "an error record")
            return self.store.cancelled(claimed.id, claimed.attempt, error)
        if outcome.retry_in is not None:
            errors = encode(outcome.errors, "errors")
            return self.store.retry(claimed.id, claimed.attempt, errors, outcome.retry_in)
        return self.store.fail(claimed.id, claimed.attempt, encode(outcome.errors, "errors"))

    def _check_recycling(self, settled: ClaimedTask) -> None:
        """After an outcome is settled: recycle past ``--max-tasks-per-child``,
        or past ``--max-memory-per-child`` after an async task (a sync task's
        own thread checks memory before it takes its next one)."""
        if self._stopping.is_set():
            return
        if self.max_tasks is not None and self._finished >= self.max_tasks:
            self._recycle(f"ran {self._finished} tasks (max tasks per child: {self.max_tasks})")
        elif settled.is_async and (why := self._memory_over()):
            self._recycle(why)

    def _memory_over(self) -> str | None:
        """Why this process is over ``--max-memory-per-child``, or None if it is not."""
        if self.max_memory is None:
            return None
        used = resident_bytes()
        if used is None or used <= self.max_memory:
            return None
        return f"uses {used >> 20} MiB (max memory per child: {self.max_memory >> 20} MiB)"

    def _recycle(self, why: str) -> None:
        logger.info("Worker %s %s: finishing running tasks, then recycling", self.worker_id, why)
        self.stats.reason = "recycled"
        self._stop_deadline = None  # never cut a task short to recycle
        self._stopping.set()

    def _release(self, claimed: Sequence[ClaimedTask], *, started: bool) -> None:
        """Give tasks back; ones that never ``started`` cost them no attempt."""
        if not claimed:
            return
        for task in claimed:
            self._held.pop(task.id, None)
        self.store.prepare()
        released = sum(
            self.store.release(task.id, task.attempt, started=started) for task in claimed
        )
        self.stats.released += released
        if released:
            logger.info("Gave back %d claimed task(s) that had not finished", released)

    def _write_progress(self) -> None:
        """Write the progress reported since the last write, if that was long enough ago."""
        if not self._progress:
            return
        now = time.monotonic()
        if now < self._next_progress_write:
            return
        self._next_progress_write = now + self.backend.config.progress_interval
        self._put_progress(self._progress.take_all())

    def _put_progress(self, reports: dict[tuple[int, int], Progress]) -> None:
        if not reports:
            return
        self.store.prepare()
        try:
            self.store.write_progress(reports)
        except DatabaseError:
            self._progress.put_back(reports)  # written with the next try
            raise

    # -- heartbeats and cancellation (dispatcher only) ------------------------------------------

    def _until_heartbeat(self) -> float:
        """Seconds until the dispatcher must wake for a heartbeat, a progress
        write or a cancel deadline."""
        due = self._next_heartbeat
        if self._progress:
            due = min(due, self._next_progress_write)
        if self._cancel_deadlines:
            due = min(due, min(at for at, _ in self._cancel_deadlines.values()))
        return max(0.0, due - time.monotonic())

    def _keep_alive(self) -> None:
        """Heartbeat when due (renewing every lease this process holds), and act
        on cancel requests: tell the task, and stop it by force after the grace."""
        now = time.monotonic()
        config = self.backend.config
        if now >= self._next_heartbeat:
            self.store.prepare()
            if not self._registered:
                self.store.register_worker(
                    worker_id=self.worker_id, name=self._name, hostname=socket.gethostname(),
                    pid=os.getpid(), supervisor_pid=self._supervisor_pid,
                    backend=self.backend.alias, queues=self._queue_label(),
                    threads=self.threads,
                )  # fmt: skip
                self._registered = True
            beat = self.store.heartbeat(self.worker_id, config.lease_seconds)
            if beat is None:
                self._registered = False  # forgotten during a long silence: say so again
            else:
                for task_id in beat.cancels:
                    self._cancel_requested(task_id, now + config.cancel_grace_seconds)
                self._give_back_orphans(beat.held)
            self._next_heartbeat = now + config.heartbeat_seconds
        for task_id, (at, claimed) in list(self._cancel_deadlines.items()):
            if now >= at:
                # Still running after the grace: only the supervisor can stop
                # it (a thread cannot be interrupted), by ending the process.
                logger.warning(
                    "task id=%s did not stop within %gs of its cancellation: stopping it by force",
                    task_id, config.cancel_grace_seconds,
                )  # fmt: skip
                self._tell(protocol.task_line("kill", claimed.id, claimed.attempt, 0.0))
                self._cancel_deadlines[task_id] = (float("inf"), claimed)

    def _give_back_orphans(self, leased: dict[int, int]) -> None:
        """Give back tasks leased to this worker that it does not know it holds.

        A claim can commit on the server while its reply is lost (the server
        restarted, the connection broke): the claim raised here, yet its rows
        are RUNNING under this worker's name. The heartbeat renews every lease
        of the worker, so without this they would stay claimed, and never run,
        for as long as the worker lives. They never started, so they go back
        as never claimed.
        """
        orphans = [
            (task_id, attempt)
            for task_id, attempt in leased.items()
            if self._held.get(task_id) != attempt
        ]
        for task_id, attempt in orphans:
            if self.store.release(task_id, attempt, started=False):
                self.stats.released += 1
                logger.warning(
                    "task id=%s: claimed for this worker by a claim whose reply was lost; "
                    "giving it back", task_id,
                )  # fmt: skip

    def _cancel_requested(self, task_id: int, kill_at: float) -> None:
        if task_id in self._cancel_deadlines:
            return
        held = {t.id: t for t in (*self._threads.running(), *self._async.running())}
        with self._events_lock:
            event = self._cancel_events.setdefault(task_id, threading.Event())
        event.set()  # a task not started yet sees it before it runs, and ends at once
        if task_id in held:
            logger.info("task id=%s: cancellation requested", task_id)
            self._cancel_deadlines[task_id] = (kill_at, held[task_id])

    def _queue_label(self) -> str:
        if self.queues.only is not None:
            return ",".join(self.queues.only)
        return "*" + "".join(f",-{q}" for q in self.queues.excluded)

    # -- reporting and shutting down ----------------------------------------------------------

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < REPORT_SECONDS:
            return
        self._last_report = now
        state = "stopping" if self._stopping.is_set() else "idle" if not self._busy() else "busy"
        # Running and prefetched apart: "busy, 7/4 threads" would read as a bug.
        running, queued = self._threads.occupancy()
        running_async, queued_async = self._async.occupancy()
        set_title(
            f"worker {self.worker_id}: {state}, {running}/{self.threads} threads"
            f"{f' (+{queued} queued)' if queued else ''}, "
            f"{running_async} async{f' (+{queued_async} queued)' if queued_async else ''}, "
            f"{self.stats.processed} done"
        )
        if self._status_fd is not None:
            with contextlib.suppress(OSError):  # the supervisor is gone: the control pipe says so
                os.write(self._status_fd, self.stats.line())

    def _shutdown(self) -> None:
        """Write what finished, give back what did not, and close."""
        try:
            with self._post_lock:
                # Closed first: every outcome is then in the outbox (and written
                # below) or refused at once; none can slip in unsettled.
                self._closed = True
            try:
                self._write_outcomes()
            except DatabaseError:
                logger.exception("Could not record %d finished task(s)", len(self._unwritten))
            unstarted = self._threads.take_unstarted() + self._async.take_unstarted()
            leftover = [*unstarted, *self._threads.running(), *self._async.running()]
            try:
                self._release(unstarted, started=False)
                self._release(leftover[len(unstarted) :], started=True)
            except DatabaseError:
                logger.exception(
                    "Could not give back %d task(s); they return when their lease expires",
                    len(leftover),
                )
            for *_, future in self._unwritten:
                if not future.done():
                    future.set_result(False)
            self._async.cancel_all()
            self._threads.stop()
            if self._announcer is not None:
                # Every future is settled: this only sends the last signals.
                self._announcer.stop(timeout=5.0)
            if self._registered:
                with contextlib.suppress(DatabaseError):
                    self.store.forget_worker(self.worker_id)
            self._report(force=True)
        finally:
            self._closed = True
            self._async.stop(timeout=1.0)
            if not self._busy():
                self._threads.join(timeout=1.0)
            self.close()
            self._selector.close()

    def close(self) -> None:
        """Close the worker's private connection."""
        if self.store.connection is not connections[self.store.alias]:
            self.store.connection.close()
        self._listening_on = None
        if self._wake_socket is not None:
            self._wake_socket.close()
            self._wake_socket = None


def _has_sync_thread(context: ThreadSensitiveContext) -> bool:
    """Whether sync code ran in ``context``'s own thread (it then has connections to close)."""
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    if executors is None:
        return True  # an asgiref that keeps this elsewhere: always clean up
    return context in executors


def _label(outcome: runner.Outcome) -> str:
    if outcome.succeeded:
        return "SUCCESSFUL"
    if outcome.cancelled:
        return "CANCELLED"
    return "RETRY" if outcome.retry_in is not None else "FAILED"
