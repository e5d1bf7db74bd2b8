"""The worker and lease tables: who is alive, what each worker holds, and who
holds each cluster-wide role (the rescue, the scheduler, the sampler)."""

from django.db import IntegrityError

from offload.states import State
from offload.store.base import LEASE_TABLE, TABLE, WORKER_TABLE, StoreBase
from offload.store.connection import atomic_on
from offload.store.rows import Heartbeat


class WorkerStore(StoreBase):
    def heartbeat(self, worker_id: str, lease_seconds: float) -> Heartbeat | None:
        """Renew the leases of ``worker_id``'s tasks and its worker row.

        Returns every task the database says ``worker_id`` holds (for the worker
        to compare with what it knows it holds) and those whose cancellation
        was requested, or None if its worker row is gone (forgotten after a
        long silence): register again.
        """
        vendor = self.vendor
        with atomic_on(self.connection), self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {TABLE} SET lease_expires_at = {vendor.now_plus_seconds} "
                "WHERE status = %s AND lease_owner = %s",
                [lease_seconds, State.RUNNING, worker_id],
            )
            cursor.execute(
                f"UPDATE {WORKER_TABLE} SET heartbeat_at = {vendor.now} WHERE id = %s", [worker_id]
            )
            if cursor.rowcount != 1:
                return None
            cursor.execute(
                f"SELECT id, attempt, cancel_requested_at FROM {TABLE} "
                "WHERE status = %s AND lease_owner = %s",
                [State.RUNNING, worker_id],
            )
            rows = cursor.fetchall()
        return Heartbeat(
            held={int(id_): int(attempt) for id_, attempt, _ in rows},
            cancels=[int(id_) for id_, _, cancel in rows if cancel is not None],
        )

    def register_worker(
        self, *, worker_id: str, name: str, hostname: str, pid: int, supervisor_pid: int,
        backend: str, queues: str, threads: int,
    ) -> None:  # fmt: skip
        """Insert (or refresh) the row that shows ``worker_id`` is alive."""
        vendor = self.vendor
        with atomic_on(self.connection), self.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {WORKER_TABLE} WHERE id = %s", [worker_id])
            cursor.execute(
                f"INSERT INTO {WORKER_TABLE} (id, name, hostname, pid, supervisor_pid, backend, "
                "queues, threads, started_at, heartbeat_at) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {vendor.now}, {vendor.now})",
                [worker_id, name, hostname[:255], pid, supervisor_pid, backend, queues[:1000],
                 threads],
            )  # fmt: skip

    def forget_worker(self, worker_id: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {WORKER_TABLE} WHERE id = %s", [worker_id])

    def forget_silent_workers(self, seconds: float) -> int:
        """Delete worker rows with no heartbeat for ``seconds``; their leases lapse alone."""
        vendor = self.vendor
        # Read first, then delete by key: a range DELETE on InnoDB locks the
        # gaps of every row it scans and deadlocks with live workers' heartbeat
        # and register statements. The heartbeat test is repeated so a worker
        # that spoke up in between is kept.
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {WORKER_TABLE} WHERE heartbeat_at < {vendor.now_plus_seconds}",
                [-seconds],
            )
            silent = [row[0] for row in cursor.fetchall()]
            if not silent:
                return 0
            marks = ", ".join(["%s"] * len(silent))
            cursor.execute(
                f"DELETE FROM {WORKER_TABLE} WHERE id IN ({marks}) "
                f"AND heartbeat_at < {vendor.now_plus_seconds}",
                [*silent, -seconds],
            )
            return int(cursor.rowcount)

    def hold_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or keep the role ``name`` for ``seconds``; False if another owner holds it.

        One UPDATE decides between contenders (the row lock serialises them);
        the INSERT covers the first time, and a unique-key clash there means
        another owner got in first.
        """
        vendor = self.vendor
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {LEASE_TABLE} SET owner = %s, expires_at = {vendor.now_plus_seconds} "
                f"WHERE name = %s AND (owner = %s OR expires_at < {vendor.now})",
                [owner, seconds, name, owner],
            )
            if cursor.rowcount == 1:
                return True
            cursor.execute(f"SELECT 1 FROM {LEASE_TABLE} WHERE name = %s", [name])
            if cursor.fetchone() is not None:
                return False
        try:
            with atomic_on(self.connection), self.connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {LEASE_TABLE} (name, owner, expires_at) "
                    f"VALUES (%s, %s, {vendor.now_plus_seconds})",
                    [name, owner, seconds],
                )
        except IntegrityError:
            return False
        return True

    def drop_lease(self, name: str, owner: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {LEASE_TABLE} WHERE name = %s AND owner = %s", [name, owner]
            )
