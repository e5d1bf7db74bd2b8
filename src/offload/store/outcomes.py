"""What becomes of a claimed task: success, failure, a retry, a release, a
cancellation, and its progress on the way. Every write here is fenced by the
attempt (see ``base.Fence``).

The outcome also says when the attempt's code began (``started_at`` the first
time, ``last_attempted_at`` each time): the claim only says when the task was
claimed (``claimed_at``), and a claimed task may wait in its worker's buffer
behind others. The worker sends how many seconds the code has run (``ran``,
from its monotonic clock) and the database subtracts it from its own clock, so
every stored time stays the database's. Riding on the outcome's write, the
start costs no statement of its own.
"""

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from offload.failures import AttemptEnd
from offload.progress import Progress
from offload.states import State
from offload.store.base import TABLE, Fence
from offload.store.connection import atomic_on
from offload.store.dependencies import DependencyStore
from offload.store.gate import KeyRef
from offload.store.vendor import Vendor
from offload.uniqueness import PERIOD

# What every write that ends a lease also sets.
_DROP_LEASE = "lease_owner = NULL, lease_expires_at = NULL"

# What every write of a final state also sets: the task lets go of its
# unique key, unless its scope is "period", held until unique_until whatever
# becomes of the task (see offload.uniqueness). For a task without a key both
# sides are NULL: the row keeps its NULL, at the cost of one comparison, and
# no index changes (PostgreSQL keeps the update HOT).
RELEASE_KEY = f"unique_key = CASE WHEN unique_scope = '{PERIOD}' THEN unique_key END"

# What a final state writes: the lease dropped and the key released.
_FINAL = f"{_DROP_LEASE}, {RELEASE_KEY}"

# A success to write: (id, attempt, return value as JSON, seconds its code ran).
Done = tuple[int, int, str, float]


def started_assignments(vendor: Vendor, seconds: str = "%s") -> tuple[str, int]:
    """The SET terms that record when the attempt's code began: ``seconds`` (an
    SQL expression) before the database's clock now; and how many times
    ``seconds`` is in them (its parameters go that many times)."""
    began = vendor.now_minus.format(seconds=seconds)
    if vendor.set_in_order:
        # Each term sees the ones before it: the start is computed once.
        return (
            f"last_attempted_at = {began}, started_at = COALESCE(started_at, last_attempted_at)",
            1,
        )
    return f"started_at = COALESCE(started_at, {began}), last_attempted_at = {began}", 2


def _started(vendor: Vendor, ran: float | None) -> tuple[str, list[Any]]:
    # None: the code never began (it could not be resolved, or was cancelled
    # before it started), so no start is written.
    if ran is None:
        return "", []
    sql, uses = started_assignments(vendor)
    return f", {sql}", [max(ran, 0.0)] * uses


def complete_assignments(vendor: Vendor) -> str:
    """The SET clause of :meth:`OutcomeStore.complete` (state, time, value, start)."""
    return (
        f"status = %s, finished_at = {vendor.now}, return_value = {vendor.json_param}, "
        f"{_FINAL}{_started(vendor, 0.0)[0]}"
    )


def complete_many_statement(vendor: Vendor, done: Sequence[Done]) -> tuple[str, list[Any]]:
    """The one statement of :meth:`OutcomeStore.complete_many`, and its parameters."""
    assignments = f"status = %s, finished_at = {vendor.now}, {_FINAL}"
    ran = [max(row[3], 0.0) for row in done]
    if vendor.complete_from_arrays is not None:
        fence, fence_params = Fence.joined()
        sql = _fill_joined(vendor.complete_from_arrays, assignments, fence, vendor, "")
        ids, attempts, values = ([row[i] for row in done] for i in range(3))
        return sql, [State.SUCCESSFUL, ids, attempts, values, ran, *fence_params]
    if vendor.complete_from_rows is not None:
        # The rows joined to the table by id: a CASE on the id would cost
        # each row a search of the whole batch (a batch of 200 took three
        # times as long with its start in two more CASEs).
        fence, fence_params = Fence.joined()
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(done))
        sql = _fill_joined(vendor.complete_from_rows, assignments, fence, vendor, rows)
        parts = [part for row, seconds in zip(done, ran, strict=True)
                 for part in (row[0], row[1], row[2], seconds)]  # fmt: skip
        return sql, [State.SUCCESSFUL, *parts, *fence_params]
    # A CASE on the id picks each row's value and start, and the fence takes
    # every row by its own attempt.
    whens = " ".join(["WHEN %s THEN %s"] * len(done))
    started, uses = started_assignments(vendor, f"CASE id {whens} END")
    fence, fence_params = Fence.each([(row[0], row[1]) for row in done])
    sql = (
        f"UPDATE {TABLE} SET {assignments}, return_value = CASE id {whens} END, {started} "
        f"WHERE {fence}"
    )
    if vendor.update_returning:
        sql += " RETURNING id"
    values = [part for row in done for part in (row[0], row[2])]
    seconds = [part for row, ago in zip(done, ran, strict=True) for part in (row[0], ago)]
    return sql, [State.SUCCESSFUL, *values, *(seconds * uses), *fence_params]


def starts_statement(vendor: Vendor, starts: dict[tuple[int, int], float]) -> tuple[str, list[Any]]:
    """The write of when running attempts began, keyed by (id, attempt), each
    given as the seconds its code has run so far (see :meth:`OutcomeStore.write_starts`)."""
    whens = " ".join(["WHEN %s THEN %s"] * len(starts))
    # The CASE is cast: PostgreSQL would otherwise type it from the parameters.
    started, uses = started_assignments(vendor, f"CAST(CASE id {whens} END AS {vendor.float_type})")
    fence, fence_params = Fence.each(list(starts))
    sql = f"UPDATE {TABLE} SET {started} WHERE {fence}"
    ran = [part for (task_id, _), ago in starts.items() for part in (task_id, max(ago, 0.0))]
    return sql, [*(ran * uses), *fence_params]


@functools.lru_cache(maxsize=64)
def _fill_joined(template: str, assignments: str, fence: str, vendor: Vendor, rows: str) -> str:
    # The same statement for every batch (of one size): formatted once.
    started, _ = started_assignments(vendor, "d.ran")
    return template.format(
        table=TABLE, assignments=f"{assignments}, {started}", fence=fence, rows=rows
    )


def _unclaim_sql(vendor: Vendor) -> str:
    # MariaDB applies SET assignments left to right, each seeing the ones
    # before: the worker list is trimmed before attempt changes.
    return f", worker_ids = {vendor.pop_last.format(col='worker_ids')}, attempt = attempt - 1"


# The status of a task given another attempt: READY, or BLOCKED if it has a
# rate key (two parameters: READY, BLOCKED; see store.rate_gate).
_AGAIN = "CASE WHEN rate_key IS NULL THEN %s ELSE %s END"


class OutcomeStore(DependencyStore):
    # Every write of a final state below takes ``keys``: the concurrency keys
    # of its tasks as (backend, key), which it locks first and whose blocked
    # tasks it promotes in the same transaction (see ``store.gate``); and
    # ``dependents``: the ids of its tasks that have tasks of a workflow
    # waiting on them, which it settles in the same transaction (see
    # ``store.dependencies``). The worker knows both from the claim and
    # passes them (none, for the tasks outside: then nothing more is
    # written); None reads them first.

    def _keys(self, keys: Iterable[KeyRef] | None, task_ids: Sequence[int]) -> list[KeyRef]:
        return self.keys_of(task_ids) if keys is None else list(keys)

    def _dependents(self, dependents: Iterable[int] | None, task_ids: Sequence[int]) -> list[int]:
        return self.dependents_of(task_ids) if dependents is None else list(dependents)

    def complete(
        self,
        task_id: int,
        attempt: int,
        return_json: str,
        ran: float,
        keys: Iterable[KeyRef] | None = None,
        dependents: Iterable[int] | None = None,
    ) -> bool:
        """Record success of ``attempt``, whose code ran ``ran`` seconds; False
        if that attempt no longer holds the task."""
        assignments = complete_assignments(self.vendor)
        started = _started(self.vendor, ran)[1]
        ids = [task_id]
        with self.ending(self._keys(keys, ids), self._dependents(dependents, ids)) as ended:
            written = self._fenced(
                assignments, [State.SUCCESSFUL, return_json, *started], task_id, attempt
            )
            ended(ids if written else [])
            return written

    def complete_many(
        self,
        done: Sequence[Done],
        keys: Iterable[KeyRef] | None = None,
        dependents: Iterable[int] | None = None,
    ) -> set[int]:
        """Record the success of many attempts, ``(id, attempt, return_json,
        ran)`` each, in one statement; return the ids whose attempt is recorded
        as a success (the others lost their claim).

        One statement, so one commit, for a whole batch of outcomes: a worker
        with tiny tasks otherwise pays a commit (a WAL flush on PostgreSQL) per
        task, which is most of a drain's database time. Every row is fenced by
        its own attempt and RUNNING, as :meth:`complete` fences one.
        """
        if not done:
            return set()
        ids = [row[0] for row in done]
        with self.ending(self._keys(keys, ids), self._dependents(dependents, ids)) as ended:
            written = self._complete_many(done)
            ended(written)
            return written

    def _complete_many(self, done: Sequence[Done]) -> set[int]:
        sql, params = complete_many_statement(self.vendor, done)
        if self.vendor.update_returning:
            return {row[0] for row in self._fetch(sql, params)}
        if self._write(sql, params) == len(done):
            return {row[0] for row in done}
        # MariaDB has no UPDATE ... RETURNING. Only when some row was not
        # written (rare: its claim was lost) are the written ones read back: a
        # row holds this attempt and SUCCESSFUL only if this worker wrote it
        # (here, or in a try whose reply was lost), since the attempt number is
        # this worker's fencing token.
        fence, fence_params = Fence.each([(row[0], row[1]) for row in done], State.SUCCESSFUL)
        rows = self._fetch(f"SELECT id FROM {TABLE} WHERE {fence}", fence_params)
        return {row[0] for row in rows}

    def fail(
        self,
        task_id: int,
        attempt: int,
        errors_json: str,
        ran: float | None = None,
        keys: Iterable[KeyRef] | None = None,
        dependents: Iterable[int] | None = None,
    ) -> bool:
        """Record final failure of ``attempt`` with the task's full error history.

        ``ran``: the seconds its code ran (None: it never began, nor is its
        start written), as for every outcome below.
        """
        vendor = self.vendor
        started, started_params = _started(vendor, ran)
        ids = [task_id]
        with self.ending(self._keys(keys, ids), self._dependents(dependents, ids)) as ended:
            written = self._fenced(
                f"status = %s, finished_at = {vendor.now}, errors = {vendor.json_param}, "
                f"{_FINAL}{started}",
                [State.FAILED, errors_json, *started_params],
                task_id,
                attempt,
            )
            ended(ids if written else [])
            return written

    def retry(
        self, task_id: int, attempt: int, errors_json: str, delay: float, ran: float | None = None
    ) -> bool:
        """Record a failed ``attempt`` that gets another one, due in ``delay`` seconds.

        A task with a rate key goes BLOCKED rather than READY: the rate
        promoter lets it in once due and its window has room (see
        ``store.rate_gate``)."""
        vendor = self.vendor
        started, started_params = _started(vendor, ran)
        return self._fenced(
            f"status = {_AGAIN}, available_at = {vendor.now_plus_seconds}, "
            f"errors = {vendor.json_param}, {_DROP_LEASE}{started}",
            [State.READY, State.BLOCKED, delay, errors_json, *started_params],
            task_id,
            attempt,
        )

    def cancelled(
        self,
        task_id: int,
        attempt: int,
        error_json: str,
        ran: float | None = None,
        keys: Iterable[KeyRef] | None = None,
        dependents: Iterable[int] | None = None,
    ) -> bool:
        """Record that running ``attempt`` stopped because it was cancelled.

        ``error_json`` (one error record) joins the task's history.
        """
        vendor = self.vendor
        started, started_params = _started(vendor, ran)
        ids = [task_id]
        with self.ending(self._keys(keys, ids), self._dependents(dependents, ids)) as ended:
            written = self._fenced(
                f"status = %s, finished_at = {vendor.now}, "
                f"errors = {vendor.append_json.format(col='errors')}, {_FINAL}{started}",
                [State.CANCELLED, error_json, *started_params],
                task_id,
                attempt,
            )
            ended(ids if written else [])
            return written

    def write_starts(self, starts: dict[tuple[int, int], float]) -> int:
        """Write when running attempts began, keyed by (id, attempt), each given
        as the seconds its code has run so far; return the rows written.

        For a task that runs longer than a moment, so its page shows a true
        start while it runs (the outcome writes it too, for every task). One
        statement for all of them, each row fenced by its attempt and RUNNING.
        """
        if not starts:
            return 0
        return self._write(*starts_statement(self.vendor, starts))

    def release(self, task_id: int, attempt: int, end: AttemptEnd) -> bool:
        """Give a claimed task back (READY, due now) without an outcome, as ``end``
        says (see ``failures.cut_short``).

        An attempt whose code never started is unclaimed: its attempt count and
        worker list go back to what they were, so the claim costs it nothing (no
        retry budget, and ``context.attempt`` stays right). Reusing that attempt
        number is safe: this worker never started the task, so it has nothing to
        write. One that started keeps the attempt (it may have done part of its
        work) and its error record joins the history.
        """
        vendor = self.vendor
        params: list[Any]
        if end.error_json is None:
            sql, params = _unclaim_sql(vendor), [State.READY]
        else:
            sql = f", errors = {vendor.append_json.format(col='errors')}"
            params = [State.READY, end.error_json]
        return self._fenced(
            f"status = %s, available_at = {vendor.now}, {_DROP_LEASE}{sql}",
            params,
            task_id,
            attempt,
        )

    def release_owner(self, worker_id: str) -> int:
        """Give back every task ``worker_id`` still holds, as never claimed; for a
        worker process known to be dead, once the attempts it had started are
        recorded (they no longer hold the lease). What is left never started (those
        whose outcome was lost are recorded first, see ``losses.give_back``):
        no trace, no attempt spent (see ``failures.cut_short``).

        Not fenced by attempt: the caller saw the process exit, so nothing of
        that lease owner can still write. Returns how many went back.
        """
        vendor = self.vendor
        sql = (
            f"UPDATE {TABLE} SET status = %s, available_at = {vendor.now}, "
            f"{_DROP_LEASE}{_unclaim_sql(vendor)} "
            "WHERE status = %s AND lease_owner = %s"
        )
        return self._write(sql, [State.READY, State.RUNNING, worker_id])

    def write_progress(self, reports: dict[tuple[int, int], Progress]) -> int:
        """Write the latest progress of running attempts, keyed by (id, attempt).

        One statement for all of them, whatever their number (the dispatcher
        writes what changed since its last write): a CASE on the id picks each
        row's values, and the fence takes every row by its attempt and
        RUNNING, so a report of an attempt that no longer holds its task is
        dropped. ``progress_at`` is the database's clock. Returns the rows written.
        """
        if not reports:
            return 0
        vendor = self.vendor
        values: dict[str, list[Any]] = {"current": [], "total": [], "message": []}
        for (task_id, _), progress in reports.items():
            values["current"] += [task_id, progress.current]
            values["total"] += [task_id, progress.total]
            values["message"] += [task_id, progress.message]
        whens = " ".join(["WHEN %s THEN %s"] * len(reports))
        fence, fence_params = Fence.each(list(reports))
        # The CASE values are cast so every engine types the column the same
        # way whatever the parameters (NULL totals, integers in a float column).
        sql = (
            f"UPDATE {TABLE} SET "
            f"progress_current = CAST(CASE id {whens} END AS {vendor.float_type}), "
            f"progress_total = CAST(CASE id {whens} END AS {vendor.float_type}), "
            f"progress_message = CASE id {whens} END, "
            f"progress_at = {vendor.now} "
            f"WHERE {fence}"
        )
        params = [*values["current"], *values["total"], *values["message"], *fence_params]
        return self._write(sql, params)

    def cancel(self, task_ids: Sequence[int], error_json: str) -> tuple[list[int], list[int]]:
        """Cancel READY (BLOCKED, WAITING) tasks at once and ask RUNNING ones to stop.

        Returns (ids now CANCELLED, ids whose cancellation was requested). A
        READY task is never claimed after this commits: both statements test the
        status, so a task claimed in between is treated as RUNNING instead.
        ``error_json`` is the error appended to a cancelled task's history.
        A READY task with a concurrency key frees its slot for a blocked one,
        and the tasks of a workflow waiting on a cancelled one are settled.
        """
        if not task_ids:
            return [], []
        vendor = self.vendor
        waiting = (State.READY, State.BLOCKED, State.WAITING)
        keys, dependents = self.keys_of(task_ids), self.dependents_of(task_ids)
        with self.ending(keys, dependents) as ended, atomic_on(self.connection):
            ready = self._ids_in(task_ids, waiting, vendor.lock_rows)
            if ready:
                self._write(
                    f"UPDATE {TABLE} SET status = %s, finished_at = {vendor.now}, "
                    f"errors = {vendor.append_json.format(col='errors')}, {RELEASE_KEY} "
                    f"WHERE id IN ({_marks(ready)}) AND status IN ({_marks(waiting)})",
                    [State.CANCELLED, error_json, *ready, *waiting],
                )
                ended(ready)
            running = self._ids_in(task_ids, (State.RUNNING,))
            if running:
                self._write(
                    f"UPDATE {TABLE} SET cancel_requested_at = "
                    f"COALESCE(cancel_requested_at, {vendor.now}) "
                    f"WHERE id IN ({_marks(running)}) AND status = %s",
                    [*running, State.RUNNING],
                )
        return ready, running

    def _ids_in(
        self, task_ids: Sequence[int], statuses: Sequence[State], suffix: str = ""
    ) -> list[int]:
        sql = (
            f"SELECT id FROM {TABLE} WHERE id IN ({_marks(task_ids)}) "
            f"AND status IN ({_marks(statuses)}){suffix}"
        )
        return [int(row[0]) for row in self._fetch(sql, [*task_ids, *statuses])]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))
