"""Running claimed tasks: the work done in the pool threads and on the event loop.

Each task is run by ``runner`` and its outcome posted to the dispatcher's
outbox; a sync task's thread waits for the write, or, with write-behind, hands
a success to the announcer and takes its next task at once (see
``announcer``). The supervisor hears of each start (for timeouts) and of each
success posted behind its thread (see ``protocol``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.db import close_old_connections
from django.tasks.backends.base import BaseTaskBackend

from offload.progress import Progress, ProgressBoard
from offload.store import ClaimedTask
from offload.worker import protocol, runner
from offload.worker.announcer import Announcer
from offload.worker.leases import Leases
from offload.worker.outbox import Outbox
from offload.worker.reporting import log_outcome


class Execution:
    """Runs one claimed task at a time per call, in the caller's thread or event loop."""

    def __init__(
        self,
        worker_id: str,
        backend: BaseTaskBackend,
        outbox: Outbox,
        leases: Leases,
        progress: ProgressBoard,
        tell: Callable[[bytes], None],
        announcer: Announcer | None,
    ) -> None:
        self.worker_id = worker_id
        self.backend = backend
        self.outbox = outbox
        self.leases = leases
        self.progress = progress
        self.tell = tell
        self.announcer = announcer
        # Set by the worker once its pools exist.
        self.interrupted: Callable[[], None] = lambda: None  # Ctrl-C inside a task
        self.after_sync: Callable[[], None] = lambda: None  # a sync task's thread is free
        self.settling: Callable[[ClaimedTask], None] = lambda claimed: None  # an async slot frees
        self.on_start: Callable[[ClaimedTask], None] = lambda claimed: None  # its code begins

    def run_sync(self, claimed: ClaimedTask) -> None:
        begun = time.monotonic()
        cancel = self._started(claimed, begun)
        try:
            outcome = runner.run(
                claimed,
                self.worker_id,
                self._recorder(claimed, begun),
                cancel,
                self._progress_sink(claimed),
                backend=self.backend,
            )
        except (runner.WorkerInterrupted, KeyboardInterrupt):
            # Ctrl-C raised inside the task (an embedded worker with no signal
            # handlers): not the task's failure. Give it back and stop.
            self.outbox.post_for_reply(claimed, None, begun)
            self.interrupted()
            return
        log_outcome(claimed, outcome, time.monotonic() - begun, self.worker_id)
        self.after_sync()

    async def run_async(self, claimed: ClaimedTask) -> None:
        begun = time.monotonic()
        cancel = self._started(claimed, begun)

        async def record(outcome: runner.Outcome) -> bool:
            future = self.outbox.post_for_reply(claimed, outcome, begun)
            # The task is done with its slot: the next one can be claimed while
            # this outcome is written (it is then announced from here).
            self.settling(claimed)
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
        log_outcome(claimed, outcome, time.monotonic() - begun, self.worker_id)

    def _started(self, claimed: ClaimedTask, begun: float) -> threading.Event:
        """Note that ``claimed`` starts at ``begun`` (monotonic, just before its
        code runs); return its cancel event."""
        cancel = self.leases.started(claimed, begun)
        self.on_start(claimed)
        self.tell(protocol.task_line("start", claimed.id, claimed.attempt, claimed.timeout))
        return cancel

    def _progress_sink(self, claimed: ClaimedTask) -> Callable[[Progress], None]:
        """Where ``claimed``'s context puts its reports: the board, under its attempt."""
        key = (claimed.id, claimed.attempt)
        return lambda progress: self.progress.report(key, progress)

    def _recorder(self, claimed: ClaimedTask, begun: float) -> runner.Recorder:
        """How a sync task's outcome is recorded: posted, then waited for; a
        success, with write-behind, handed to the announcer instead."""
        outbox, announcer = self.outbox, self.announcer

        def record(outcome: runner.Outcome, announce: runner.Announce) -> bool:
            if announcer is None or not outcome.succeeded:
                return outbox.post_for_reply(claimed, outcome, begun).result()
            # Told before the outcome is posted, so before its "end": should
            # the process die before the write, the supervisor gives the task
            # back without blaming it for the death.
            self.tell(protocol.task_line("done", claimed.id, claimed.attempt))
            announcer.hand(lambda pending: outbox.post(claimed, outcome, begun, pending), announce)
            return False  # announced by the announcer once written

        return record


def _has_sync_thread(context: ThreadSensitiveContext) -> bool:
    """Whether sync code ran in ``context``'s own thread (it then has connections to close)."""
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    if executors is None:
        return True  # an asgiref that keeps this elsewhere: always clean up
    return context in executors
