"""The database's own limits, measured in the same run as the workloads.

A bare ``INSERT`` of one row of about a task's size, in a transaction of its
own and committed, through the same Django connection (same settings, same
SQLite pragmas) that offload's enqueue uses, into a table with nothing else
on it:

* paced, at W4's rate on an otherwise idle database: each round trip's time,
  the floor of W4's latency on the caller's clock (a task cannot start before
  the transaction that enqueued it has committed);
* back to back in a tight loop: commits per second, the ceiling of W1's
  enqueue one by one.

Each figure of the report is also read as a fraction of these.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction

from bench.caller_clock import paced, summary

TABLE = "offload_bench_limit"
# About the size of a task row's arguments, options and names.
PAYLOAD = '{"args": ["/tmp/offload-bench/w4.stamps", 123], "kwargs": {}}' + " " * 140


def create_statement(vendor: str) -> str:
    key = {
        "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "postgresql": "BIGSERIAL PRIMARY KEY",
        "mysql": "BIGINT AUTO_INCREMENT PRIMARY KEY",
    }[vendor]
    return f"CREATE TABLE {TABLE} (id {key}, payload TEXT NOT NULL)"


@contextmanager
def scratch_table() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        cursor.execute(create_statement(connection.vendor))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def insert_commit() -> None:
    """One row, in a transaction of its own, committed: what an enqueue cannot beat."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (payload) VALUES (%s)", [PAYLOAD])


def measure(paced_count: int, rate: float, tight_count: int) -> dict[str, Any]:
    """The paced round trip (p50/p95/p99 ms) and the tight loop's commits per second."""
    connection.ensure_connection()
    with scratch_table():
        insert_commit()  # the first statement prepares what the others reuse
        samples = []
        for _ in paced(paced_count, rate):
            begun = time.perf_counter()
            insert_commit()
            samples.append((time.perf_counter() - begun) * 1000)
        begun = time.perf_counter()
        for _ in range(tight_count):
            insert_commit()
        seconds = time.perf_counter() - begun
    return {
        "paced": {"count": paced_count, "rate_per_second": rate, **summary(samples)},
        "tight": {"count": tight_count, "seconds": seconds, "per_second": tight_count / seconds},
    }
