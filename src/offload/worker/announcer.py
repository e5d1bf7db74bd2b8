"""Write-behind for successful sync tasks: the thread goes on, a helper announces.

A task thread that waits for its outcome's write spends most of a tiny task's
time waiting (a claim and a commit per task on the dispatcher's side), and the
dispatcher writes one outcome per commit because no other is pending. With
write-behind the thread hands a successful outcome over and takes its next
task at once, so outcomes pile up while a write is in progress and the next
write takes them all in one statement (``TaskStore.complete_many``).

``task_finished`` must still mean "written": this thread waits for each write,
in order, and sends the signal once it landed (and not at all if the attempt
lost its claim meanwhile). Receivers therefore run here, not in the task's
thread; Django's own backends promise nothing about that thread either.

What it costs: a process killed before the dispatcher writes loses the
outcomes in flight, and those tasks run again (they are counted as started,
so the attempt is spent as for any crash). The limit bounds how many: at most
``limit`` outcomes per process wait to be written, and a task thread that
would exceed it waits, which also holds back threads when receivers are slow.
Failures are never written behind: their signal is sent in the task's thread
inside the ``except`` block, where receivers can read ``sys.exc_info()``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from django.db import close_old_connections, connections

from offload.worker.runner import Announce

logger = logging.getLogger("offload.worker")


class Pending:
    """Where the dispatcher says whether a success written behind landed: the
    ``outbox.Reply`` of an outcome handed to the announcer.

    It stands in for the Future an outcome waited on: the thread that handed
    the outcome over does not wait, so a Future (a lock and a condition per
    task, and a wake-up of this thread per outcome to wait on the next one)
    bought nothing. The dispatcher's answer goes straight to the announcer's
    inbox, in the order the outcomes were settled.
    """

    __slots__ = ("_announce", "_announcer", "_done")

    def __init__(self, announcer: Announcer, announce: Announce) -> None:
        self._announcer = announcer
        self._announce = announce
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, written: bool) -> None:
        # Settled once: by the dispatcher, or as given back when it closes.
        if not self._done:
            self._done = True
            self._announcer.settled(written, self._announce)


Post = Callable[[Pending], None]


class Announcer:
    """One thread that sends ``task_finished`` for outcomes written behind their task."""

    def __init__(self, limit: int, name: str) -> None:
        if limit < 1:
            raise ValueError("an announcer needs room for at least one outcome")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._inbox: queue.SimpleQueue[tuple[bool, Announce] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hand(self, post: Post, announce: Announce) -> None:
        """Post an outcome (``post`` puts it in the dispatcher's outbox, with
        the ``Pending`` to settle once written) and return; ``announce`` runs
        here once the write succeeded.

        Blocks while ``limit`` outcomes are already waiting to be written.
        """
        self._slots.acquire()
        try:
            post(Pending(self, announce))
        except BaseException:
            self._slots.release()
            raise

    def settled(self, written: bool, announce: Announce) -> None:
        """The dispatcher's answer for one outcome: ``announce`` runs here if written."""
        self._inbox.put((written, announce))

    def stop(self, timeout: float) -> None:
        """Announce what was written, then end the thread (within ``timeout``)."""
        if self._thread.ident is None:
            return
        self._inbox.put(None)
        self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            while (item := self._next()) is not None:
                written, announce = item
                try:
                    # The dispatcher settles every outcome: written, refused as
                    # stale, or False when the worker gave the task back.
                    if written:
                        announce()
                except Exception:
                    logger.exception("A task_finished receiver raised")
                finally:
                    self._slots.release()
        finally:
            connections.close_all()

    def _next(self) -> tuple[bool, Announce] | None:
        try:
            return self._inbox.get_nowait()
        except queue.Empty:
            # Receivers may use the ORM: the same hygiene as a task thread,
            # once per run of announcements rather than after each one.
            close_old_connections()
            return self._inbox.get()
