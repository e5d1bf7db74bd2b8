"""The outbox: where finished tasks hand their outcome to the dispatcher.

A task (in a pool thread, on the event loop, or through the announcer for a
success written behind) *posts* its outcome here with a ``Reply``; the
dispatcher, the only user of the worker's connection, *writes* every posted
outcome (successes in batches, one statement for many), then *settles* each:
counts it and tells its ``Reply`` whether it landed. A task's
``task_finished`` is *announced* only after that, so it still means written.

Names along the path, one per idea: post (task -> outbox), write (outbox ->
database), settle (answer the reply), announce (send ``task_finished``).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from offload.payload import encode
from offload.store import ClaimedTask, TaskStore
from offload.worker.runner import Outcome

# The most successes written by one statement: past a few hundred the statement
# (a CASE per row on SQLite and MariaDB) costs more to parse than a commit.
COMPLETE_BATCH_SIZE = 200


class Reply(Protocol):
    """Told whether a posted outcome was written: the Future a task waits on,
    or the announcer's ``Pending`` for a success written behind."""

    def done(self) -> bool: ...
    def set_result(self, result: bool) -> None: ...


@dataclass(slots=True)
class Posted:
    """An outcome on its way from a task to the database."""

    claimed: ClaimedTask
    outcome: Outcome | None  # None: give the task back unfinished
    elapsed: float  # how long the task ran
    reply: Reply
    begun: float  # when it began, on the monotonic clock

    def ran(self) -> float:
        """Seconds since the task began, for the write of when it began (see
        ``store.outcomes``): read as the statement is built, not when the
        outcome was posted, so the database subtracts it from its clock at the write."""
        return time.monotonic() - self.begun

    @property
    def succeeded(self) -> bool:
        return self.outcome is not None and self.outcome.succeeded


class Outbox:
    """Outcomes posted by tasks and not written yet; ``nudge`` wakes the dispatcher."""

    def __init__(self, nudge: Callable[[], None]) -> None:
        self._nudge = nudge
        self._queue: queue.SimpleQueue[Posted] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False  # set when the worker stops: late outcomes are refused
        # Taken out of the queue by the dispatcher and not written yet, in order.
        self.unwritten: list[Posted] = []

    def __len__(self) -> int:
        """Outcomes posted and not written yet (the dispatcher writes them next)."""
        return self._queue.qsize() + len(self.unwritten)

    def post(
        self, claimed: ClaimedTask, outcome: Outcome | None, begun: float, reply: Reply
    ) -> None:
        """Post an outcome (None: give the task back); ``reply`` learns whether it was written."""
        with self._lock:
            if self._closed:
                reply.set_result(False)  # the task was given back; this outcome is stale
                return
            self._queue.put(Posted(claimed, outcome, time.monotonic() - begun, reply, begun))
        self._nudge()

    def post_for_reply(
        self, claimed: ClaimedTask, outcome: Outcome | None, begun: float
    ) -> Future[bool]:
        """Post an outcome; the Future says whether it was written."""
        future: Future[bool] = Future()
        self.post(claimed, outcome, begun, future)
        return future

    def close(self) -> None:
        """Refuse outcomes from now on: every earlier one is in the outbox."""
        with self._lock:
            self._closed = True

    def collect(self) -> list[Posted]:
        """Move what was posted behind the unwritten ones; return them all, in order."""
        while True:
            try:
                self.unwritten.append(self._queue.get_nowait())
            except queue.Empty:
                return self.unwritten

    def leading_successes(self) -> list[Posted]:
        """The successes at the head of the line, as many as one statement writes."""
        return list(
            itertools.takewhile(
                lambda posted: posted.succeeded,
                itertools.islice(self.unwritten, COMPLETE_BATCH_SIZE),
            )
        )

    def refuse_unwritten(self) -> None:
        """Tell every reply still waiting that its outcome was not written."""
        for posted in self.unwritten:
            if not posted.reply.done():
                posted.reply.set_result(False)


def write_successes(store: TaskStore, batch: list[Posted]) -> set[int]:
    """Write successes in one statement; return the ids whose attempt still held the task."""
    store.prepare()
    written = [p for p in batch if p.outcome]
    return store.complete_many(
        [
            (p.claimed.id, p.claimed.attempt, p.outcome.return_json or "null", p.ran())
            for p in written
            if p.outcome
        ],
        # Tasks with a concurrency key let blocked ones in (see store.gate).
        keys=[key for p in written for key in p.claimed.keys],
        # Tasks of a workflow settle the tasks waiting on them (store.dependencies).
        dependents=[task_id for p in written for task_id in p.claimed.dependents],
    )


def write_failure(store: TaskStore, posted: Posted) -> bool:
    """Write one outcome that is not a success (those go in batches)."""
    claimed, outcome = posted.claimed, posted.outcome
    assert outcome is not None, "a give-back is written by the leases"
    assert not outcome.succeeded, "successes are written by complete_many"
    store.prepare()
    ran = posted.ran() if outcome.began else None
    if outcome.cancelled:
        error = encode(outcome.errors[-1], "an error record")
        dependents = claimed.dependents
        return store.cancelled(
            claimed.id, claimed.attempt, error, ran, keys=claimed.keys, dependents=dependents
        )
    if outcome.retry_in is not None:
        errors = encode(outcome.errors, "errors")
        return store.retry(claimed.id, claimed.attempt, errors, outcome.retry_in, ran)
    errors = encode(outcome.errors, "errors")
    return store.fail(
        claimed.id, claimed.attempt, errors, ran, keys=claimed.keys, dependents=claimed.dependents
    )
