"""Attempts that never reached a verdict: a crash, a kill, a timeout, a lease that
expired. The rescue finds RUNNING rows whose lease lapsed and ends each attempt
with :meth:`RescueStore.attempt_lost`, fenced by its attempt like every
outcome, and by the lease's expiry, so a heartbeat that renewed it just now
wins. Rendered in ``tests/sql/rescue.*.sql``."""

from collections.abc import Iterable
from typing import Any

from offload.failures import AttemptEnd
from offload.states import State
from offload.store.base import TABLE, Fence
from offload.store.dependencies import DependencyStore
from offload.store.gate import KeyRef
from offload.store.vendor import Vendor
from offload.uniqueness import PERIOD


def expired_select(vendor: Vendor) -> str:
    """The rescue's search for expired leases, oldest first (one parameter: the limit)."""
    # The status is a constant in the SQL, as the partial index of running
    # leases states it: SQLite uses a partial index only for a query whose
    # terms imply the index's condition, which a bound parameter cannot.
    return (
        "SELECT id, attempt, max_attempts, lease_owner, backend, concurrency_key, has_dependents "
        f"FROM {TABLE} "
        f"WHERE status = '{State.RUNNING.value}' AND lease_expires_at < {vendor.now} "
        "ORDER BY lease_expires_at LIMIT %s"
    )


def attempt_lost_statement(
    vendor: Vendor,
    task_id: int,
    attempt: int,
    error_json: str,
    delay: float,
    *,
    expired_only: bool = False,
) -> tuple[str, list[Any]]:
    """The write of :meth:`RescueStore.attempt_lost`, and its parameters."""
    spent = "attempt >= max_attempts"
    fence, fence_params = Fence.one(task_id, attempt)
    sql = (
        f"UPDATE {TABLE} SET "
        # A rate-keyed task tried again waits BLOCKED (see store.rate_gate).
        f"status = CASE WHEN {spent} THEN %s WHEN rate_key IS NULL THEN %s ELSE %s END, "
        f"finished_at = CASE WHEN {spent} THEN {vendor.now} ELSE NULL END, "
        f"available_at = CASE WHEN {spent} THEN available_at "
        f"ELSE {vendor.now_plus_seconds} END, "
        f"errors = {vendor.append_json.format(col='errors')}, "
        # A task that fails for good lets go of its unique key, as every
        # final state does (see store.outcomes); one tried again keeps it.
        f"unique_key = CASE WHEN {spent} AND unique_scope <> '{PERIOD}' THEN NULL "
        "ELSE unique_key END, "
        "lease_owner = NULL, lease_expires_at = NULL "
        f"WHERE {fence}"
    )
    if expired_only:
        sql += f" AND lease_expires_at < {vendor.now}"
    return sql, [State.FAILED, State.READY, State.BLOCKED, delay, error_json, *fence_params]


class RescueStore(DependencyStore):
    def attempt_lost(
        self,
        task_id: int,
        attempt: int,
        end: AttemptEnd,
        delay: float,
        *,
        expired_only: bool = False,
        keys: Iterable[KeyRef] | None = None,
        dependents: Iterable[int] | None = None,
    ) -> bool:
        """End an attempt that never reached a verdict (crash, kill, timeout, lost lease).

        It is tried again in ``delay`` seconds while attempts remain, else it is
        FAILED; ``end``'s error record joins its history either way (an attempt
        that never started is released instead, see ``failures.cut_short``). The choice is made
        in SQL from the row's own ``max_attempts``, so the caller need not import
        the task. ``expired_only`` (the rescue) also requires the lease to have
        expired, so a heartbeat that renewed it just now wins. A task with a
        concurrency key that fails for good lets a blocked one of its key in
        (``keys`` as for ``OutcomeStore``; None: read from the row), and one
        with dependents settles them (``dependents`` likewise).
        """
        if end.error_json is None:
            raise ValueError("an attempt that never started is released, not lost")
        statement = attempt_lost_statement(
            self.vendor, task_id, attempt, end.error_json, delay, expired_only=expired_only
        )
        ids = [task_id]
        keys = self.keys_of(ids) if keys is None else keys
        dependents = self.dependents_of(ids) if dependents is None else dependents
        with self.ending(keys, dependents) as ended:
            written = self._write(*statement) == 1
            # One that failed for good (not tried again) settles its dependents.
            failed = written and task_id in set(dependents)
            if failed and self.states_of(ids).get(task_id) == State.FAILED:
                ended(ids)
            return written

    def expired_leases(
        self, limit: int
    ) -> list[tuple[int, int, int, str | None, list[KeyRef], list[int]]]:
        """RUNNING tasks whose lease has expired: (id, attempt, max_attempts,
        owner, concurrency keys, dependents), the last two for ``attempt_lost``."""
        rows = self._fetch(expired_select(self.vendor), [limit])
        return [
            (int(a), int(b), int(c), d, [] if key is None else [(str(backend), str(key))],
             [int(a)] if has_dependents else [])
            for a, b, c, d, backend, key, has_dependents in rows
        ]  # fmt: skip

    def explain_rescue(self, limit: int = 100) -> list[str]:
        """The plan of the rescue's search for expired leases (see ``explain_claim``)."""
        return self._explain(expired_select(self.vendor), [limit])
