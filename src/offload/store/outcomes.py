"""What becomes of a claimed task: success, failure, a retry, a release, a
cancellation, and its progress on the way. Every write here is fenced by the
attempt (see ``base.Fence``)."""

import functools
from collections.abc import Sequence
from typing import Any

from offload.failures import AttemptEnd
from offload.progress import Progress
from offload.states import State
from offload.store.base import TABLE, Fence, StoreBase
from offload.store.connection import atomic_on
from offload.store.vendor import Vendor

# What every write that ends a lease also sets.
_DROP_LEASE = "lease_owner = NULL, lease_expires_at = NULL"


def complete_assignments(vendor: Vendor) -> str:
    """The SET clause of :meth:`OutcomeStore.complete` (state, time, value)."""
    return (
        f"status = %s, finished_at = {vendor.now}, return_value = {vendor.json_param}, "
        f"{_DROP_LEASE}"
    )


def complete_many_statement(
    vendor: Vendor, done: Sequence[tuple[int, int, str]]
) -> tuple[str, list[Any]]:
    """The one statement of :meth:`OutcomeStore.complete_many`, and its parameters."""
    assignments = f"status = %s, finished_at = {vendor.now}, {_DROP_LEASE}"
    if vendor.complete_from_arrays is not None:
        fence, fence_params = Fence.joined()
        sql = _fill_arrays(vendor.complete_from_arrays, assignments, fence)
        ids, attempts, values = (list(column) for column in zip(*done, strict=True))
        return sql, [State.SUCCESSFUL, ids, attempts, values, *fence_params]
    # A CASE on the id picks each row's value, and the fence takes every
    # row by its own attempt.
    whens = " ".join(["WHEN %s THEN %s"] * len(done))
    fence, fence_params = Fence.each([(row[0], row[1]) for row in done])
    sql = f"UPDATE {TABLE} SET {assignments}, return_value = CASE id {whens} END WHERE {fence}"
    if vendor.update_returning:
        sql += " RETURNING id"
    params = [State.SUCCESSFUL, *(part for row in done for part in (row[0], row[2]))]
    return sql, [*params, *fence_params]


@functools.lru_cache(maxsize=8)
def _fill_arrays(template: str, assignments: str, fence: str) -> str:
    # The same statement for every batch: formatted once.
    return template.format(table=TABLE, assignments=assignments, fence=fence)


def _unclaim_sql(vendor: Vendor) -> str:
    # MariaDB applies SET assignments left to right, each seeing the ones
    # before: the worker list is trimmed before attempt changes.
    return f", worker_ids = {vendor.pop_last.format(col='worker_ids')}, attempt = attempt - 1"


class OutcomeStore(StoreBase):
    def complete(self, task_id: int, attempt: int, return_json: str) -> bool:
        """Record success of ``attempt``; False if that attempt no longer holds the task."""
        assignments = complete_assignments(self.vendor)
        return self._fenced(assignments, [State.SUCCESSFUL, return_json], task_id, attempt)

    def complete_many(self, done: Sequence[tuple[int, int, str]]) -> set[int]:
        """Record the success of many attempts, ``(id, attempt, return_json)`` each,
        in one statement; return the ids whose attempt is recorded as a success
        (the others lost their claim).

        One statement, so one commit, for a whole batch of outcomes: a worker
        with tiny tasks otherwise pays a commit (a WAL flush on PostgreSQL) per
        task, which is most of a drain's database time. Every row is fenced by
        its own attempt and RUNNING, as :meth:`complete` fences one.
        """
        if not done:
            return set()
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

    def fail(self, task_id: int, attempt: int, errors_json: str) -> bool:
        """Record final failure of ``attempt`` with the task's full error history."""
        vendor = self.vendor
        return self._fenced(
            f"status = %s, finished_at = {vendor.now}, errors = {vendor.json_param}, {_DROP_LEASE}",
            [State.FAILED, errors_json],
            task_id,
            attempt,
        )

    def retry(self, task_id: int, attempt: int, errors_json: str, delay: float) -> bool:
        """Record a failed ``attempt`` that gets another one, due in ``delay`` seconds."""
        vendor = self.vendor
        return self._fenced(
            f"status = %s, available_at = {vendor.now_plus_seconds}, "
            f"errors = {vendor.json_param}, {_DROP_LEASE}",
            [State.READY, delay, errors_json],
            task_id,
            attempt,
        )

    def cancelled(self, task_id: int, attempt: int, error_json: str) -> bool:
        """Record that running ``attempt`` stopped because it was cancelled.

        ``error_json`` (one error record) joins the task's history.
        """
        vendor = self.vendor
        return self._fenced(
            f"status = %s, finished_at = {vendor.now}, "
            f"errors = {vendor.append_json.format(col='errors')}, {_DROP_LEASE}",
            [State.CANCELLED, error_json],
            task_id,
            attempt,
        )

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
        """Cancel READY tasks at once and ask RUNNING ones to stop.

        Returns (ids now CANCELLED, ids whose cancellation was requested). A
        READY task is never claimed after this commits: both statements test the
        status, so a task claimed in between is treated as RUNNING instead.
        ``error_json`` is the error appended to a cancelled task's history.
        """
        if not task_ids:
            return [], []
        vendor = self.vendor
        with atomic_on(self.connection):
            ready = self._ids_in(task_ids, State.READY, vendor.lock_rows)
            if ready:
                self._write(
                    f"UPDATE {TABLE} SET status = %s, finished_at = {vendor.now}, "
                    f"errors = {vendor.append_json.format(col='errors')} "
                    f"WHERE id IN ({_marks(ready)}) AND status = %s",
                    [State.CANCELLED, error_json, *ready, State.READY],
                )
            running = self._ids_in(task_ids, State.RUNNING)
            if running:
                self._write(
                    f"UPDATE {TABLE} SET cancel_requested_at = "
                    f"COALESCE(cancel_requested_at, {vendor.now}) "
                    f"WHERE id IN ({_marks(running)}) AND status = %s",
                    [*running, State.RUNNING],
                )
        return ready, running

    def _ids_in(self, task_ids: Sequence[int], status: State, suffix: str = "") -> list[int]:
        sql = f"SELECT id FROM {TABLE} WHERE id IN ({_marks(task_ids)}) AND status = %s{suffix}"
        return [int(row[0]) for row in self._fetch(sql, [*task_ids, status])]


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))
