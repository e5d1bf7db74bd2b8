"""Where claimed tasks run inside one worker process: threads and an event loop.

Sync tasks run on a fixed set of threads fed from an inbox; ``async def`` tasks
run on one event loop in its own thread, as many at once as the limit allows.
Both pools only run tasks: every database write about a task goes back to the
worker's dispatcher (see ``loop``), which owns the worker's connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from django.db import close_old_connections, connections

from offload.store import ClaimedTask

logger = logging.getLogger("offload.worker")


class ThreadPool:
    """``size`` threads taking sync tasks from an inbox, one at a time each.

    The threads are daemons: a worker that must exit with a task still running
    gives the task back (see ``loop``) and does not wait for the thread.
    """

    def __init__(
        self,
        size: int,
        work: Callable[[ClaimedTask], None],
        name: str,
        on_free: Callable[[], None],
    ) -> None:
        self.size = size
        self._work = work
        self._on_free = on_free
        self._name = name
        self._inbox: queue.SimpleQueue[ClaimedTask | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._running: dict[int, ClaimedTask] = {}  # thread ident -> its task
        self._threads: list[threading.Thread] = []
        self._closing = False  # set by close(): threads take no further task

    def start(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(
                target=self._serve, name=f"{self._name}-{index + 1}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    @property
    def load(self) -> int:
        """Tasks handed to the pool and not finished: queued plus running."""
        with self._lock:
            return self._queued + len(self._running)

    def occupancy(self) -> tuple[int, int]:
        """(tasks running, claimed tasks waiting for a free thread), read together."""
        with self._lock:
            return len(self._running), self._queued

    def running(self) -> list[ClaimedTask]:
        with self._lock:
            return list(self._running.values())

    def submit(self, claimed: ClaimedTask) -> None:
        with self._lock:
            self._queued += 1
        self._inbox.put(claimed)

    def take_unstarted(self) -> list[ClaimedTask]:
        """Remove and return the tasks no thread has started yet."""
        taken: list[ClaimedTask] = []
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:  # a stop sentinel: keep it for its thread
                self._inbox.put(None)
                break
            taken.append(item)
        with self._lock:
            self._queued -= len(taken)
        return taken

    def stop(self) -> None:
        """Let each thread exit once it is done with its current task."""
        for _ in self._threads:
            self._inbox.put(None)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _serve(self) -> None:
        me = threading.get_ident()
        try:
            while True:
                waited, claimed = self._next()
                if claimed is None:
                    break
                with self._lock:
                    self._queued -= 1
                    self._running[me] = claimed
                try:
                    # The hygiene Django applies around a request: task code
                    # starts with usable connections and leaves none broken.
                    # Straight after the previous task's cleanup (no wait in
                    # between) nothing can have aged, so that check is skipped.
                    if waited:
                        close_old_connections()
                    self._work(claimed)
                except BaseException:
                    logger.exception("Task %s: unexpected error in the worker thread", claimed.id)
                finally:
                    close_old_connections()
                    with self._lock:
                        del self._running[me]
                    self._on_free()
        finally:
            connections.close_all()  # this thread's connections die with it

    def close(self) -> None:
        """Let each thread end once its current task is done, leaving the
        tasks not started in the inbox (for ``take_unstarted``). Unlike
        ``stop``, it takes effect before a thread takes its next task."""
        self._closing = True

    def _next(self) -> tuple[bool, ClaimedTask | None]:
        """The next task (None: stop), and whether the thread waited for it."""
        if self._closing:
            return False, None
        try:
            return False, self._inbox.get_nowait()
        except queue.Empty:
            return True, self._inbox.get()


class AsyncPool:
    """One event loop, in its own thread, running up to ``limit`` async tasks at once.

    More may be handed over than that: the extra ones wait on the loop for a
    slot (prefetched, as sync tasks wait in the thread pool's inbox), so a slot
    that frees starts the next task at once instead of after a claim's round
    trip. A task that waits has not started: ``take_unstarted`` returns it.

    The loop starts with the first async task, so a worker that never sees one
    pays for no extra thread.
    """

    def __init__(
        self,
        limit: int,
        work: Callable[[ClaimedTask], Coroutine[Any, Any, None]],
        name: str,
        on_free: Callable[[], None],
    ) -> None:
        self.limit = limit
        self._work = work
        self._on_free = on_free
        self._name = name
        self._lock = threading.Lock()
        self._running: dict[int, tuple[ClaimedTask, Future[None]]] = {}
        # Task ids handed over that do not hold a slot yet.
        self._waiting: set[int] = set()
        # Tasks whose outcome is handed over (waiting for its write): they hold
        # no slot, so the next task can start and be claimed meanwhile.
        self._settling: set[int] = set()
        # Slot releases of the tasks holding one, by task id (loop thread only).
        self._releases: dict[int, Callable[[], None]] = {}
        self._slots: asyncio.Semaphore | None = None  # made on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def load(self) -> int:
        """Tasks handed over and not settled: waiting for a slot plus running."""
        with self._lock:
            return len(self._running) - len(self._settling)

    def occupancy(self) -> tuple[int, int]:
        """(tasks holding a slot, tasks waiting for one), read together."""
        with self._lock:
            waiting = len(self._waiting)
            return len(self._running) - len(self._settling) - waiting, waiting

    def running(self) -> list[ClaimedTask]:
        """Tasks that started and are still running (not waiting, not settling)."""
        with self._lock:
            return [
                c
                for c, _ in self._running.values()
                if c.id not in self._settling and c.id not in self._waiting
            ]

    def settling(self, claimed: ClaimedTask) -> None:
        """``claimed`` has handed its outcome over: its slot is free.

        Called on the loop, from the task itself.
        """
        with self._lock:
            self._settling.add(claimed.id)
        release = self._releases.pop(claimed.id, None)
        if release is not None:
            release()
        self._on_free()

    def submit(self, claimed: ClaimedTask) -> None:
        loop = self._ensure_loop()
        with self._lock:
            self._waiting.add(claimed.id)
            future = asyncio.run_coroutine_threadsafe(self._guarded(claimed), loop)
            self._running[id(future)] = (claimed, future)
        future.add_done_callback(self._forget)

    def take_unstarted(self) -> list[ClaimedTask]:
        """Withdraw and return the tasks still waiting for a slot (never started)."""
        with self._lock:
            taken = [
                (claimed, future)
                for claimed, future in self._running.values()
                if claimed.id in self._waiting
            ]
        # A task that takes its slot meanwhile is not cancelled (it started).
        return [claimed for claimed, future in taken if self._withdraw(claimed, future)]

    def _withdraw(self, claimed: ClaimedTask, future: Future[None]) -> bool:
        loop = self._loop
        if loop is None:
            return False
        done: Future[bool] = Future()

        def withdraw() -> None:
            # On the loop: no task can take a slot between the check and the cancel.
            with self._lock:
                waiting = claimed.id in self._waiting
            if waiting:
                future.cancel()
            done.set_result(waiting)

        loop.call_soon_threadsafe(withdraw)
        try:
            return done.result(timeout=5.0)
        except TimeoutError:
            return False

    def cancel_all(self) -> None:
        with self._lock:
            futures = [future for _, future in self._running.values()]
        for future in futures:
            future.cancel()

    def finish_settling(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the tasks whose outcome is handed
        over to end: their last lines (the attempt's span, its signals) run
        after the write, and ``cancel_all`` would cut them off."""
        with self._lock:
            futures = [f for c, f in self._running.values() if c.id in self._settling]
        if futures:
            concurrent.futures.wait(futures, timeout=timeout)

    def stop(self, timeout: float) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self.cancel_all()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            entry = self._running.pop(id(future), None)
            if entry is not None:
                self._settling.discard(entry[0].id)
                self._waiting.discard(entry[0].id)
        self._on_free()

    async def _guarded(self, claimed: ClaimedTask) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        await slots.acquire()
        with self._lock:
            self._waiting.discard(claimed.id)
        self._releases[claimed.id] = slots.release
        try:
            await self._work(claimed)
        except asyncio.CancelledError:
            raise
        except BaseException:
            logger.exception("Task %s: unexpected error on the event loop", claimed.id)
        finally:
            # Released here unless the task settled (and released it) first.
            release = self._releases.pop(claimed.id, None)
            if release is not None:
                release()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name=f"{self._name}-loop", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        return loop
