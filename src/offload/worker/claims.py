"""How much a worker claims, and when it looks for due tasks again.

A process never claims more than it can start. For sync tasks that is one per
free thread, or, when recent tasks were short, what the threads can start
within ``CLAIM_HORIZON_SECONDS`` (tiny tasks are claimed in full batches, one
statement for many); for async tasks, the free room under the async limit.
When only one kind has room, the claim asks for that kind only.

CPU-bound tasks (see ``worker.cpu_bound``) share their process's interpreter
lock with every other thread, so a process holding one claims nothing more
until it ends: its siblings, each with its own lock, take the rest. After a
claim that brought CPU-bound tasks, a process claims no more than its free
threads for a while, so one process does not prefetch a batch of them that
its siblings could have started at once.

Both classes here are plain arithmetic on figures the loop passes in: no
database, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass

# A claimed task is RUNNING (its start stamped, no other worker can take it)
# from the claim on, so a worker claims only what it expects to start within
# this many seconds, judged by how long its recent tasks took.
CLAIM_HORIZON_SECONDS = 0.1

# Where no LISTEN/NOTIFY is available, an idle worker looks for due tasks after
# this many seconds, doubling each time it finds none, up to POLL_INTERVAL: a
# worker that just ran something reacts within milliseconds, a long-idle one
# costs one cheap read per POLL_INTERVAL.
FIRST_POLL_SECONDS = 0.02

# After a claim that brought a CPU-bound task, this many claims that bring
# tasks but none CPU-bound pass before the sync prefetch comes back: a mixed
# queue's short tasks would otherwise pull the average time down and the next
# claims would take CPU-bound tasks in batches again.
CPU_MEMORY_CLAIMS = 10

# A kind of task: False for sync, True for async; None in a claim means either.
Kind = bool


@dataclass(slots=True)
class Load:
    """What a worker holds right now, as the sizing needs it."""

    finished: int  # outcomes written (settled) so far
    unwritten: int  # outcomes posted, not written yet: they count as finished
    sync: int  # sync tasks held: running plus waiting for a thread
    async_: int  # async tasks held
    cpu: int = 0  # CPU-bound tasks held (counted in sync as well)

    @property
    def busy(self) -> int:
        return self.sync + self.async_


class ClaimSizer:
    """How many tasks of which kind to claim, from the capacity and recent task times."""

    def __init__(
        self, threads: int, async_limit: int, batch_size: int, max_tasks: int | None
    ) -> None:
        self.threads = threads
        self.async_limit = async_limit
        self.batch_size = batch_size
        self.max_tasks = max_tasks
        # Moving averages of how long tasks ran; None: none timed yet.
        self.mean_sync_seconds: float | None = None
        self.mean_async_seconds: float | None = None
        # Claims left before prefetching comes back (see CPU_MEMORY_CLAIMS).
        self.cpu_memory = 0

    def claimed(self, tasks: int, cpu_bound: int) -> None:
        """A claim brought ``tasks`` tasks, ``cpu_bound`` of them CPU-bound."""
        if cpu_bound:
            self.cpu_memory = CPU_MEMORY_CLAIMS
        elif tasks and self.cpu_memory:
            self.cpu_memory -= 1

    def timed(self, is_async: bool, elapsed: float) -> None:
        """A task of that kind ran ``elapsed`` seconds."""
        if is_async:
            previous = self.mean_async_seconds
            self.mean_async_seconds = (
                elapsed if previous is None else 0.7 * previous + 0.3 * elapsed
            )
        else:
            previous = self.mean_sync_seconds
            self.mean_sync_seconds = elapsed if previous is None else 0.7 * previous + 0.3 * elapsed

    def room(self, load: Load, drained: set[Kind]) -> tuple[int, Kind | None] | None:
        """How many tasks to claim now and of which kind (None: either), or None.

        ``drained`` holds the kinds not worth asking for until the next look.
        """
        if load.cpu:
            # A CPU-bound task holds the interpreter lock most of the time:
            # whatever else this process took would wait for it, while a
            # sibling process could run it.
            return None
        done = load.finished + load.unwritten
        if self.max_tasks is not None and done + load.busy >= self.max_tasks:
            return None
        target = self.sync_target()
        sync_room = 0 if False in drained else target - load.sync
        if load.sync >= self.threads and load.sync > target // 2:
            # Every thread is busy and at least half the prefetched tasks are
            # still waiting: topping up one at a time would cost a claim per
            # task. Refill in one statement once half of them have started.
            sync_room = 0
        async_room = 0 if True in drained else self.async_target() - load.async_
        limit: int
        kind: Kind | None
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
            limit = min(limit, self.max_tasks - done - load.busy)
        return min(limit, max(self.batch_size, self.threads)), kind

    def sync_target(self) -> int:
        """Sync tasks to hold at once: one per thread, more per thread when tasks are tiny."""
        if self.mean_sync_seconds is None or self.cpu_memory:
            # Nothing known yet (the first tasks could be slow), or CPU-bound
            # tasks came lately: no more than the threads can start now.
            return self.threads
        fits = int(CLAIM_HORIZON_SECONDS / max(self.mean_sync_seconds, 1e-6))
        return self.threads * max(1, min(self.batch_size, fits))

    def async_target(self) -> int:
        """Async tasks to hold at once: the limit, plus up to a claim's worth
        waiting for a slot when recent async tasks were short, so a slot that
        frees starts one at once (a wave of short tasks ending together would
        otherwise wait for a claim each)."""
        limit = self.async_limit
        mean = self.mean_async_seconds
        if mean is None or mean * min(limit, self.batch_size) > CLAIM_HORIZON_SECONDS * limit:
            return limit  # what waits must start within the claim horizon
        return limit + min(limit, self.batch_size)

    def claim_limit(self) -> int:
        """How many sync tasks one thread holds now (what fits in the claim horizon)."""
        return self.sync_target() // self.threads


class Looks:
    """When to look for due tasks of each kind again.

    Per kind, the monotonic time of the next look and the current polling
    step. A kind whose last claim found fewer than it asked for is "drained"
    until its look is due: a freed slot of that kind does not send the worker
    back to the database before then. Each kind backs off on its own, because
    a claim for one kind only has to read past every ready task of the other:
    with a sync backlog and no async tasks, an async claim every 20 ms (the
    first step, kept short by the sync claims' success) cost more than the
    sync work itself.
    """

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self.look_at = {False: 0.0, True: 0.0}
        self.polls = {False: FIRST_POLL_SECONDS, True: FIRST_POLL_SECONDS}

    def now_all(self) -> None:
        """Look for both kinds at once (a notification came, or some may have been missed)."""
        self.look_at = {False: 0.0, True: 0.0}

    def drained(self, now: float) -> set[Kind]:
        """The kinds whose next look is not due yet."""
        return {kind for kind, at in self.look_at.items() if now < at}

    def found(self, kinds: set[Kind]) -> None:
        """A claim brought tasks of these kinds: poll them quickly again."""
        for kind in kinds:
            self.polls[kind] = FIRST_POLL_SECONDS

    def came_short(
        self, asked: tuple[Kind, ...], now: float, listening: bool, due: float | None
    ) -> None:
        """A claim for ``asked`` found fewer than it asked for: back off those kinds.

        With LISTEN the next look is a poll interval away (a notification
        comes sooner); ``due`` is when the next delayed task is due, if known.
        """
        for kind in asked:
            wait = self.poll_interval if listening else self.polls[kind]
            if due is not None and due > 0:
                # Wake when the next delayed task is due, not a poll later.
                wait = min(wait, due)
            self.look_at[kind] = now + wait
            self.polls[kind] = min(self.polls[kind] * 2, self.poll_interval)

    def next_look(self, kind: Kind | None) -> float:
        """When the next look for ``kind`` (None: either) is due."""
        kinds = (False, True) if kind is None else (kind,)
        return min(self.look_at[each] for each in kinds)
