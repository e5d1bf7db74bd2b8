"""Workflows in the database: the edges between tasks, and what the end of
an upstream task does to the tasks waiting on it (see ``offload.workflows``).

A task enqueued with upstream tasks is WAITING, in no queue, with
``waiting_on`` the count of its upstreams that have not ended. The rule kept:
it becomes READY exactly once, when its last upstream ends, and never while
one runs. The count is what makes that exact:

* Every write of a final state of a task with dependents (``has_dependents``,
  which the worker knows from the claim, so a task outside a workflow pays
  nothing) *settles* them in the same transaction: each waiting dependent's
  count goes down by the upstreams of this transaction that ended, then the
  dependents at zero become READY (BLOCKED if they have a concurrency or rate
  key: their gate decides, see ``GateStore.rebalance``).
* The decrement is an UPDATE of the dependent's row, so two upstreams that
  end at once in two transactions take its row lock one after the other, and
  the second sees the first's count on every engine (PostgreSQL re-reads a
  row it waited for; SQLite has one writer). A count that a plain read of the
  upstreams' states would give instead could miss both: each transaction
  sees the other's upstream still running.
* A failed or cancelled upstream cancels the dependents enqueued to stop
  (the default), in the same transaction, and their own dependents in turn;
  those enqueued to continue count it as ended.

The rescuer's ``sweep_waiting`` recounts waiting tasks against their
upstreams' states: a dependency added to a task already claimed (whose
worker did not know it had dependents), or an upstream deleted by an
operator, heals within one turn. Its write is a compare-and-set on the count
it read, so it never undoes a decrement made meanwhile.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from offload.exceptions import UpstreamFailed
from offload.failures import error_json
from offload.payload import decode
from offload.states import FINISHED_STATES, State
from offload.store.base import TABLE, StoreBase
from offload.store.connection import atomic_on
from offload.store.gate import GateStore, KeyRef
from offload.store.rows import ClaimedTask

DEPENDENCY_TABLE = "offload_task_dependency"

# What a failed upstream does to a dependent (``on_upstream_failure``).
STOP = "stop"
CONTINUE = "continue"
# How a dependent receives its upstreams' results (``upstream_results``).
VALUE = "value"
LIST = "list"

# Ids per statement: a workflow's rows go in, and its dependents are read, a
# chunk at a time.
IDS_PER_STATEMENT = 500

_FINAL = ", ".join(f"'{state.value}'" for state in sorted(FINISHED_STATES))
_WAITING = f"status = '{State.WAITING.value}'"
_SUCCESSFUL = f"'{State.SUCCESSFUL.value}'"


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


# No statement below asks for an order the indexes do not give: a worker's
# session on PostgreSQL runs with enable_sort off (so that a claim never
# sorts), and there a sort the planner cannot avoid took 140 ms on a table of
# a few rows. What needs an order is sorted in Python, after the read.


def dependents_sql(count: int) -> str:
    """The waiting dependents of ``count`` upstreams that just ended: each
    with its failure rule, how many of them ended, and the first of them that
    did not succeed (parameters: the upstream ids)."""
    return (
        f"SELECT d.task_id, t.on_upstream_failure, COUNT(*), "
        f"MIN(CASE WHEN u.status <> {_SUCCESSFUL} THEN u.id END) "
        f"FROM {DEPENDENCY_TABLE} d JOIN {TABLE} u ON u.id = d.upstream_id "
        f"JOIN {TABLE} t ON t.id = d.task_id "
        f"WHERE d.upstream_id IN ({_marks(count)}) AND t.{_WAITING} "
        "GROUP BY d.task_id, t.on_upstream_failure"
    )


def decrement_sql() -> str:
    """One waiting dependent's count less the upstreams that ended
    (parameters: how many, the id)."""
    return f"UPDATE {TABLE} SET waiting_on = waiting_on - %s WHERE id = %s AND {_WAITING}"


def ready_sql(count: int) -> str:
    """Which of ``count`` waiting tasks have no upstream left, with what
    their promotion needs (parameters: the ids)."""
    return (
        f"SELECT id, backend, queue_name, concurrency_key, rate_key FROM {TABLE} "
        f"WHERE id IN ({_marks(count)}) AND {_WAITING} AND waiting_on <= 0"
    )


def promote_sql(count: int) -> str:
    """Waiting tasks made READY, or BLOCKED where a key's gate must let them
    in (parameters: READY, BLOCKED, the ids)."""
    return (
        f"UPDATE {TABLE} SET status = CASE WHEN concurrency_key IS NULL AND rate_key IS NULL "
        f"THEN %s ELSE %s END WHERE id IN ({_marks(count)}) AND {_WAITING}"
    )


def stop_sql(vendor_now: str, append_errors: str) -> str:
    """One waiting task cancelled because an upstream failed (parameters:
    CANCELLED, the error record, the id)."""
    return (
        f"UPDATE {TABLE} SET status = %s, finished_at = {vendor_now}, "
        f"errors = {append_errors} WHERE id = %s AND {_WAITING}"
    )


def recount_sql() -> str:
    """Waiting tasks after an id, each with its stored count, the upstreams
    that have not ended, and the first that failed (parameters: the id,
    how many). In id order through offload_task_waiting_idx (partial: it
    holds WAITING tasks only) where the engine has partial indexes; MariaDB
    sorts the waiting tasks it reads through the claim index."""
    return (
        f"SELECT t.id, t.waiting_on, t.on_upstream_failure, "
        f"(SELECT COUNT(*) FROM {DEPENDENCY_TABLE} d JOIN {TABLE} u ON u.id = d.upstream_id "
        f"WHERE d.task_id = t.id AND u.status NOT IN ({_FINAL})), "
        f"(SELECT MIN(u.id) FROM {DEPENDENCY_TABLE} d JOIN {TABLE} u ON u.id = d.upstream_id "
        f"WHERE d.task_id = t.id AND u.status IN ({_FINAL}) AND u.status <> {_SUCCESSFUL}) "
        f"FROM {TABLE} t WHERE t.{_WAITING} AND t.id > %s ORDER BY t.id LIMIT %s"
    )


def upstream_values_sql(count: int) -> str:
    """The upstreams of ``count`` tasks, in order: each with its state and
    return value (parameters: the task ids)."""
    return (
        f"SELECT d.task_id, d.position, d.upstream_id, u.status, u.return_value "
        f"FROM {DEPENDENCY_TABLE} d LEFT JOIN {TABLE} u ON u.id = d.upstream_id "
        f"WHERE d.task_id IN ({_marks(count)})"
    )


@dataclass
class Settled:
    """What settling dependents did, for after the commit: the queues to
    announce, and the keys whose gate must look at the tasks made BLOCKED."""

    queues: set[str] = field(default_factory=set)
    keys: set[KeyRef] = field(default_factory=set)

    def add(self, other: "Settled") -> None:
        self.queues |= other.queues
        self.keys |= other.keys


@dataclass(frozen=True)
class Wait:
    """A task of a workflow and what it waits for: its upstreams in order,
    how it receives their results (``VALUE``, ``LIST`` or None), and what a
    failed one does (``STOP`` or ``CONTINUE``)."""

    task_id: int
    upstreams: tuple[int, ...]
    results: str | None = None
    rule: str = STOP


@dataclass(frozen=True)
class Failed:
    """An upstream that did not succeed, as a task enqueued to run whatever
    its upstreams did receives it in place of a result."""

    task_id: str
    status: str


def upstream_failed_json(upstream_id: int) -> str:
    """The error a task cancelled by a failed upstream records."""
    message = f"Upstream task {upstream_id} did not succeed; this task was not run."
    return error_json(UpstreamFailed, message, attempt=None, worker_id=None)


def _ignore(ended: Iterable[int]) -> None:
    pass


def _first_as_int(row: tuple[Any, ...]) -> int:
    return int(row[0])


def _task_and_position(row: tuple[Any, ...]) -> tuple[int, int]:
    return int(row[0]), int(row[1])


class DependencyStore(GateStore):
    @contextlib.contextmanager
    def ending(
        self, keys: Iterable[KeyRef], dependents: Iterable[int]
    ) -> Iterator[Callable[[Iterable[int]], None]]:
        """A transaction for a write of final states: ``keys`` as for
        ``releasing``, and ``dependents`` the ids among its tasks that have
        dependents. The block reports the ids its write ended (through the
        function it is given); their dependents are settled before the
        commit, then announced or passed to their keys' gates. With neither
        keys nor dependents, no transaction at all."""
        waiting = set(dependents)
        if not waiting:
            with self.releasing(keys):
                yield _ignore
            return
        ended: list[int] = []
        with self.releasing(keys), atomic_on(self.connection):
            yield ended.extend
            done = self.settle([task_id for task_id in ended if task_id in waiting])
        self.after_settled(done)

    def after_settled(self, done: Settled) -> None:
        """Once settled dependents are committed: wake the workers of the
        queues they joined, and let the gates of their keys decide on those
        made BLOCKED (each key in a transaction of its own, as the sweep does:
        a key locked after this transaction's keys could deadlock with
        another's)."""
        if done.queues:
            self.announcer.announce(self.connection, sorted(done.queues))
        for key in sorted(done.keys):
            self.rebalance([key])

    def dependents_of(self, task_ids: Sequence[int]) -> list[int]:
        """Which of ``task_ids`` have dependents (for callers that did not
        learn it from a claim)."""
        if not task_ids:
            return []
        sql = (
            f"SELECT id FROM {TABLE} WHERE id IN ({_marks(len(task_ids))}) AND has_dependents = %s"
        )
        return [int(row[0]) for row in self._fetch(sql, [*task_ids, True])]

    def explain_waiting_sweep(self, limit: int = 100) -> list[str]:
        """The plan of the rescuer's walk of waiting tasks (see ``explain_claim``)."""
        return self._explain(recount_sql(), [0, limit])

    def workflow_tasks(self, workflow_id: int) -> list[int]:
        """The ids of a workflow's tasks, in the order it was built."""
        sql = f"SELECT id FROM {TABLE} WHERE workflow_id = %s ORDER BY id"
        return [int(row[0]) for row in self._fetch(sql, [workflow_id])]

    def _by_chunk(self, sql: str, task_ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """``sql`` (with ``{marks}`` for a chunk of ids) over every chunk of ``task_ids``."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(task_ids), IDS_PER_STATEMENT):
            chunk = list(task_ids[start : start + IDS_PER_STATEMENT])
            rows += self._fetch(sql.format(marks=_marks(len(chunk))), chunk)
        return rows

    def upstreams_of(self, task_ids: Sequence[int]) -> set[int]:
        """Which of ``task_ids`` some task waits for (or waited for)."""
        sql = (
            f"SELECT DISTINCT upstream_id FROM {DEPENDENCY_TABLE} WHERE upstream_id IN ({{marks}})"
        )
        return {int(row[0]) for row in self._by_chunk(sql, task_ids)}

    def states_of(self, task_ids: Sequence[int]) -> dict[int, str]:
        """The stored state of each of ``task_ids`` still in the table."""
        sql = f"SELECT id, status FROM {TABLE} WHERE id IN ({{marks}})"
        return {int(id_): str(status) for id_, status in self._by_chunk(sql, task_ids)}

    def workflows_of(self, task_ids: Sequence[int]) -> set[int | None]:
        """The workflows ``task_ids`` belong to (None: a task outside one)."""
        sql = f"SELECT DISTINCT workflow_id FROM {TABLE} WHERE id IN ({{marks}})"
        return {None if row[0] is None else int(row[0]) for row in self._by_chunk(sql, task_ids)}

    def settle(self, ended: Iterable[int]) -> Settled:
        """Settle the dependents of tasks that reached a final state in the
        caller's open transaction (only those it wrote: a task counts once).
        Cancellations by a failed upstream are followed down the graph."""
        done = Settled()
        frontier = sorted(set(ended))
        while frontier:
            stopped: list[int] = []
            counted: list[int] = []
            for start in range(0, len(frontier), IDS_PER_STATEMENT):
                chunk = frontier[start : start + IDS_PER_STATEMENT]
                rows = sorted(self._fetch(dependents_sql(len(chunk)), chunk), key=_first_as_int)
                for task_id, rule, count, failed in rows:
                    if failed is not None and rule != CONTINUE:
                        if self._stop(int(task_id), int(failed)):
                            stopped.append(int(task_id))
                    elif self._write(decrement_sql(), [int(count), int(task_id)]):
                        counted.append(int(task_id))
            done.add(self._wake(counted))
            frontier = stopped
        return done

    def _stop(self, task_id: int, upstream_id: int) -> bool:
        vendor = self.vendor
        sql = stop_sql(vendor.now, vendor.append_json.format(col="errors"))
        params = [State.CANCELLED, upstream_failed_json(upstream_id), task_id]
        return self._write(sql, params) == 1

    def _wake(self, task_ids: Sequence[int]) -> Settled:
        """Make those of ``task_ids`` with no upstream left READY (or BLOCKED
        behind their key's gate). Their rows are locked by this transaction's
        decrement, so what the read finds is what the UPDATE changes."""
        done = Settled()
        if not task_ids:
            return done
        rows = self._fetch(ready_sql(len(task_ids)), list(task_ids))
        if not rows:
            return done
        ids = [int(row[0]) for row in rows]
        self._write(promote_sql(len(ids)), [State.READY, State.BLOCKED, *ids])
        for _, backend, queue, concurrency_key, rate_key in rows:
            if concurrency_key is not None:
                done.keys.add((str(backend), str(concurrency_key)))
            elif rate_key is None:
                done.queues.add(str(queue))
        return done

    def sweep_waiting(self, after_id: int, limit: int) -> tuple[int, Settled]:
        """Recount up to ``limit`` waiting tasks after ``after_id`` against
        their upstreams' states, and settle those that are due; return the
        last id looked at (0: the end was reached, start again) and what was
        settled. Each fix is its own statement, a compare-and-set on the
        count read, so a decrement made meanwhile is never undone."""
        rows = self._fetch(recount_sql(), [after_id, limit])
        done = Settled()
        for task_id, stored, rule, still_open, failed in rows:
            with atomic_on(self.connection):
                done.add(self._fix(int(task_id), stored, rule, int(still_open), failed))
        last = int(rows[-1][0]) if len(rows) == limit else 0
        return last, done

    def _fix(
        self, task_id: int, stored: int | None, rule: str | None, still_open: int, failed: Any
    ) -> Settled:
        if failed is not None and rule != CONTINUE:
            return self.settle([task_id]) if self._stop(task_id, int(failed)) else Settled()
        if still_open == stored:
            return self._wake([task_id]) if still_open <= 0 else Settled()
        written = self._write(
            f"UPDATE {TABLE} SET waiting_on = %s WHERE id = %s AND {_WAITING} AND waiting_on = %s",
            [still_open, task_id, stored],
        )
        return self._wake([task_id]) if written else Settled()

    def link(self, workflow_id: int, task_ids: Sequence[int], waits: Sequence[Wait]) -> None:
        """Make ``task_ids``, just enqueued in the caller's open transaction,
        one workflow, and each of ``waits`` wait for its upstreams. An
        upstream may be any task of the backend, even one that has ended:
        the upstreams are locked and read first, so one that ends meanwhile
        either ends before (and is not counted) or after (and finds this
        task among its dependents)."""
        for start in range(0, len(task_ids), IDS_PER_STATEMENT):
            chunk = list(task_ids[start : start + IDS_PER_STATEMENT])
            self._write(
                f"UPDATE {TABLE} SET workflow_id = %s WHERE id IN ({_marks(len(chunk))})",
                [workflow_id, *chunk],
            )
        upstreams = sorted({up for wait in waits for up in wait.upstreams})
        states = self._lock_states(upstreams)
        edges = [(w.task_id, up, pos) for w in waits for pos, up in enumerate(w.upstreams)]
        for start in range(0, len(edges), IDS_PER_STATEMENT):
            rows = edges[start : start + IDS_PER_STATEMENT]
            self._write(
                f"INSERT INTO {DEPENDENCY_TABLE} (task_id, upstream_id, position) VALUES "
                + ", ".join(["(%s, %s, %s)"] * len(rows)),
                [part for edge in rows for part in edge],
            )
        for wait in waits:
            self._wait(wait, states)
        still = [up for up in upstreams if states.get(up) not in FINISHED_STATES]
        for start in range(0, len(still), IDS_PER_STATEMENT):
            chunk = still[start : start + IDS_PER_STATEMENT]
            self._write(
                f"UPDATE {TABLE} SET has_dependents = %s WHERE id IN ({_marks(len(chunk))})",
                [True, *chunk],
            )

    def _lock_states(self, task_ids: Sequence[int]) -> dict[int, str]:
        states: dict[int, str] = {}
        for start in range(0, len(task_ids), IDS_PER_STATEMENT):
            chunk = list(task_ids[start : start + IDS_PER_STATEMENT])
            sql = (
                f"SELECT id, status FROM {TABLE} WHERE id IN ({_marks(len(chunk))}) "
                f"ORDER BY id{self.vendor.lock_rows}"
            )
            states.update((int(id_), str(status)) for id_, status in self._fetch(sql, chunk))
        missing = set(task_ids) - set(states)
        if missing:
            raise ValueError(f"No task with id {min(missing)} to wait for in this database.")
        return states

    def _wait(self, wait: Wait, states: dict[int, str]) -> None:
        """Write what ``wait``'s task waits for: WAITING on its open upstreams,
        cancelled if one has failed and it stops, or left as enqueued if every
        upstream has ended."""
        open_ = sum(1 for up in wait.upstreams if states[up] not in FINISHED_STATES)
        failed = [
            up for up in wait.upstreams if states[up] in FINISHED_STATES
            and states[up] != State.SUCCESSFUL
        ]  # fmt: skip
        waiting = open_ > 0 and not (failed and wait.rule == STOP)
        self._write(
            f"UPDATE {TABLE} SET waiting_on = %s, upstream_results = %s, "
            f"on_upstream_failure = %s{', status = %s' if waiting else ''} WHERE id = %s",
            [open_, wait.results, wait.rule, *([State.WAITING] if waiting else []), wait.task_id],
        )
        if failed and wait.rule == STOP:
            vendor = self.vendor
            self._write(
                f"UPDATE {TABLE} SET status = %s, finished_at = {vendor.now}, "
                f"errors = {vendor.append_json.format(col='errors')} WHERE id = %s",
                [State.CANCELLED, upstream_failed_json(failed[0]), wait.task_id],
            )


def upstream_values(store: StoreBase, task_ids: Sequence[int]) -> dict[int, list[Any]]:
    """The results the upstreams of ``task_ids`` pass on, in order: each
    upstream's return value, or ``Failed`` for one that did not succeed (or
    was deleted). For the claim, which any store can make."""
    found: dict[int, list[Any]] = {task_id: [] for task_id in task_ids}
    for start in range(0, len(task_ids), IDS_PER_STATEMENT):
        chunk = list(task_ids[start : start + IDS_PER_STATEMENT])
        rows = store._fetch(upstream_values_sql(len(chunk)), chunk)
        for task_id, _, upstream_id, status, value in sorted(rows, key=_task_and_position):
            if status == State.SUCCESSFUL:
                found[int(task_id)].append(decode(value))
            else:
                found[int(task_id)].append(Failed(str(upstream_id), str(status or "DELETED")))
    return found


def with_upstream(store: StoreBase, claimed: list[ClaimedTask]) -> list[ClaimedTask]:
    """``claimed``, each task of a workflow given its upstreams' results (one
    read for the batch; none for a batch without workflow tasks)."""
    wanting = [task.id for task in claimed if task.upstream_results is not None]
    if not wanting:
        return claimed
    values = upstream_values(store, wanting)
    found = []
    for task in claimed:
        if task.upstream_results is None:
            found.append(task)
            continue
        got = values[task.id]
        passed: tuple[Any, ...] = (got,) if task.upstream_results == LIST else tuple(got[:1])
        found.append(replace(task, upstream=passed))
    return found
