"""A worker's hold on its tasks: heartbeats, cancel requests, orphaned claims.

Each heartbeat renews every lease the worker holds (the rescue hands a task
to another worker only once its lease expired), registers the worker the
first time, and brings back the cancel requests for its tasks and the tasks
the database says it holds. A cancelled task is told at once (its context's
event) and, if still running after the grace, killed by the supervisor.
Dispatcher only, except ``started``, which task threads call.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from offload.conf import Options
from offload.exceptions import AttemptGivenBack
from offload.failures import NOT_STARTED, cut_short
from offload.store import ClaimedTask, QueueFilter, TaskStore
from offload.worker import protocol

logger = logging.getLogger("offload.worker")


@dataclass(frozen=True)
class Registration:
    """What the worker's row says about it (for operators)."""

    worker_id: str
    name: str
    supervisor_pid: int
    backend: str
    queues: str  # a label: "a,b", or "*" with ",-c" per excluded queue
    threads: int


class Leases:
    """Heartbeats, cancels and orphans of one worker."""

    def __init__(
        self,
        registration: Registration,
        options: Options,
        tell: Callable[[bytes], None],
        running: Callable[[], list[ClaimedTask]],
    ) -> None:
        self.registration = registration
        self.options = options
        self._tell = tell  # sends task lines to the supervisor
        self._running = running  # the tasks started and not finished
        self.registered = False  # the worker row exists (written with the first heartbeat)
        self.next_heartbeat = 0.0
        # Every task claimed and not yet settled or given back, id -> attempt
        # (see give_back_orphans).
        self.held: dict[int, int] = {}
        # Per started task: the event its context reads, and, once a cancel was
        # requested, when it is stopped by force if still running.
        self._cancel_events: dict[int, threading.Event] = {}
        self.cancel_deadlines: dict[int, tuple[float, ClaimedTask]] = {}
        self._events_lock = threading.Lock()

    def hold(self, claimed: ClaimedTask) -> None:
        self.held[claimed.id] = claimed.attempt

    def drop(self, task_id: int) -> None:
        self.held.pop(task_id, None)

    def give_back(
        self, store: TaskStore, claimed: Sequence[ClaimedTask], *, started: bool, why: str = ""
    ) -> int:
        """Give tasks back; return how many. Ones that never ``started`` cost them
        no attempt and leave no trace; the others keep the attempt and record
        ``why`` they did not finish (see ``failures.cut_short``)."""
        if not claimed:
            return 0
        for task in claimed:
            self.held.pop(task.id, None)
        store.prepare()
        worker_id = self.registration.worker_id
        released = 0
        for task in claimed:
            end = cut_short(
                AttemptGivenBack, f"attempt {task.attempt} given back unfinished: {why}",
                started=started, attempt=task.attempt, worker_id=worker_id,
            )  # fmt: skip
            released += store.release(task.id, task.attempt, end)
        if released:
            logger.info("Gave back %d claimed task(s) that had not finished", released)
        return released

    def pass_on(self, store: TaskStore, claimed: Sequence[ClaimedTask]) -> int:
        """Give back tasks this process will not start now, as never claimed, and
        wake the workers of their queues (a sibling process is free to run them).
        Returns how many went back."""
        released = 0
        for task in claimed:
            self.held.pop(task.id, None)
            released += store.release(task.id, task.attempt, NOT_STARTED)
        if released:
            store.announcer.announce(store.connection, {task.queue_name for task in claimed})
            logger.debug("Passed %d CPU-bound task(s) on to other processes", released)
        return released

    def started(self, claimed: ClaimedTask) -> threading.Event:
        """``claimed`` starts now (task thread): its cancel event."""
        with self._events_lock:
            return self._cancel_events.setdefault(claimed.id, threading.Event())

    def ended(self, claimed: ClaimedTask) -> None:
        """Forget ``claimed``'s cancel event and deadline."""
        with self._events_lock:
            self._cancel_events.pop(claimed.id, None)
        self.cancel_deadlines.pop(claimed.id, None)

    def next_due(self) -> float:
        """The monotonic time of the next heartbeat or cancel deadline."""
        due = self.next_heartbeat
        if self.cancel_deadlines:
            due = min(due, min(at for at, _ in self.cancel_deadlines.values()))
        return due

    def keep_alive(self, store: TaskStore, now: float) -> int:
        """Heartbeat when due (renewing every lease), act on cancel requests and
        kill deadlines; return how many orphaned tasks were given back."""
        released = 0
        if now >= self.next_heartbeat:
            released = self._heartbeat(store, now)
            self.next_heartbeat = now + self.options.heartbeat_seconds
        for task_id, (at, claimed) in list(self.cancel_deadlines.items()):
            if now >= at:
                # Still running after the grace: only the supervisor can stop
                # it (a thread cannot be interrupted), by ending the process.
                logger.warning(
                    "task id=%s did not stop within %gs of its cancellation: stopping it by force",
                    task_id, self.options.cancel_grace_seconds,
                )  # fmt: skip
                self._tell(protocol.task_line("kill", claimed.id, claimed.attempt, 0.0))
                self.cancel_deadlines[task_id] = (float("inf"), claimed)
        return released

    def _heartbeat(self, store: TaskStore, now: float) -> int:
        r = self.registration
        store.prepare()
        if not self.registered:
            store.register_worker(
                worker_id=r.worker_id, name=r.name, hostname=socket.gethostname(),
                pid=os.getpid(), supervisor_pid=r.supervisor_pid, backend=r.backend,
                queues=r.queues, threads=r.threads,
            )  # fmt: skip
            self.registered = True
        beat = store.heartbeat(r.worker_id, self.options.lease_seconds)
        if beat is None:
            self.registered = False  # forgotten during a long silence: say so again
            return 0
        for task_id in beat.cancels:
            self.cancel_requested(task_id, now + self.options.cancel_grace_seconds)
        return self.give_back_orphans(store, beat.held)

    def give_back_orphans(self, store: TaskStore, leased: dict[int, int]) -> int:
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
            if self.held.get(task_id) != attempt
        ]
        released = 0
        for task_id, attempt in orphans:
            if store.release(task_id, attempt, NOT_STARTED):
                released += 1
                logger.warning(
                    "task id=%s: claimed for this worker by a claim whose reply was lost; "
                    "giving it back", task_id,
                )  # fmt: skip
        return released

    def cancel_requested(self, task_id: int, kill_at: float) -> None:
        if task_id in self.cancel_deadlines:
            return
        held = {t.id: t for t in self._running()}
        with self._events_lock:
            event = self._cancel_events.setdefault(task_id, threading.Event())
        event.set()  # a task not started yet sees it before it runs, and ends at once
        if task_id in held:
            logger.info("task id=%s: cancellation requested", task_id)
            self.cancel_deadlines[task_id] = (kill_at, held[task_id])

    def forget_worker(self, store: TaskStore) -> None:
        """Remove the worker's row, if it wrote one (the worker is stopping)."""
        if self.registered:
            store.forget_worker(self.registration.worker_id)


def queue_label(queues: QueueFilter) -> str:
    """The worker row's queues: "a,b", or "*" with ",-c" per excluded queue."""
    if queues.only is not None:
        return ",".join(queues.only)
    return "*" + "".join(f",-{q}" for q in queues.excluded)
