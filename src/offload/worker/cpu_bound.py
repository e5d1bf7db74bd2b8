"""Which claimed tasks are CPU-bound, and which of a claim this process keeps.

A sync task is CPU-bound when its queue is one of the worker's
``CPU_BOUND_QUEUES`` or its ``@task`` says ``cpu_bound=True``. Python code
holds the interpreter lock while it computes, so two CPU-bound tasks in one
process take turns on one core however many threads it has. A process runs
one at a time: of a claim, it keeps the first CPU-bound task (none if it
already runs one) and passes the others on to its siblings, and it claims
nothing more until that task ends (see ``claims``).

An ``async def`` task is never counted: the event loop runs one thing at a
time anyway, and CPU-heavy work belongs in a sync task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from offload.results import resolve_task
from offload.store import ClaimedTask


@dataclass(slots=True)
class Split:
    """A claim, sorted: what runs here, what goes to a sibling, and how many were CPU-bound."""

    keep: list[ClaimedTask]
    passed: list[ClaimedTask]
    cpu_bound: int


class CpuBound:
    """The CPU-bound tasks a process holds, and the test for one."""

    def __init__(self, queues: Iterable[str] = ()) -> None:
        self.queues = frozenset(queues)
        self.held: set[int] = set()  # ids of the CPU-bound tasks this process holds
        # Each task path's own flag, looked up once: the dispatcher asks for
        # every task it claims, and an import_string per task would cost more
        # than the claim of a no-op task.
        self._by_path: dict[str, bool] = {}

    def __contains__(self, claimed: ClaimedTask) -> bool:
        if claimed.is_async:
            return False
        return claimed.queue_name in self.queues or self._flagged(claimed.task_path)

    def _flagged(self, path: str) -> bool:
        try:
            return self._by_path[path]
        except KeyError:
            pass
        try:
            flagged = getattr(resolve_task(path), "cpu_bound", False) is True
        except Exception:
            # A path that does not import, or a module that raises as it
            # loads: the runner fails the task with the reason.
            flagged = False
        self._by_path[path] = flagged
        return flagged

    def split(self, batch: Sequence[ClaimedTask]) -> Split:
        """The tasks of ``batch`` to run here, and the CPU-bound ones to pass on.

        The first CPU-bound task is kept when none is held already; the tasks
        that are not CPU-bound are all kept (their claim was sized for the
        threads).
        """
        split = Split([], [], 0)
        for claimed in batch:
            if claimed not in self:
                split.keep.append(claimed)
                continue
            split.cpu_bound += 1
            if self.held:
                split.passed.append(claimed)
            else:
                self.held.add(claimed.id)
                split.keep.append(claimed)
        return split

    def ended(self, task_id: int) -> None:
        """The task ``task_id`` no longer runs here (it settled or went back)."""
        self.held.discard(task_id)
