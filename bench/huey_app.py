"""huey, as the benchmark runs it: the instance and its tasks, for producer and consumer.

``huey_consumer bench.huey_app.huey`` loads the instance by its dotted path,
so it is built when this module is imported, from ``OFFLOAD_BENCH_HUEY``:

* ``sqlite:PATH``: ``SqliteHuey`` on the file PATH, whose connections run the
  same pragmas as the benchmark's Django connections
  (``bench.settings.SQLITE_INIT_COMMAND``: WAL, ``synchronous=NORMAL``) and
  the same 30 s busy timeout;
* ``redis:URL``: ``RedisHuey`` at URL (its defaults: a blocking pop).

``OFFLOAD_BENCH_HUEY_NAME`` names the queue (its Redis keys are prefixed
with it), so a run never touches another's keys.

The task bodies are those of ``bench.tasks`` (which needs Django, so they are
repeated here): the first line reads the host's
monotonic clock, then one line is appended to a file.
"""

from __future__ import annotations

import os
import sqlite3
import time

from huey import Huey, RedisHuey, SqliteHuey
from huey.storage import SqliteStorage

from bench.caller_clock import append_stamp
from bench.settings import SQLITE_INIT_COMMAND

SQLITE_TIMEOUT = 30  # as bench.settings' Django connections


class BenchSqliteStorage(SqliteStorage):
    """huey's SQLite storage with the pragmas of the benchmark's Django connections."""

    def _create_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection = super()._create_connection()
        for pragma in SQLITE_INIT_COMMAND.split(";"):
            if pragma.strip():
                conn.execute(pragma)
        return conn


class BenchSqliteHuey(SqliteHuey):
    storage_class = BenchSqliteStorage


def from_env() -> Huey:
    where = os.environ.get("OFFLOAD_BENCH_HUEY", "")
    name = os.environ.get("OFFLOAD_BENCH_HUEY_NAME", "offload-bench")
    kind, _, location = where.partition(":")
    if kind == "sqlite" and location:
        # journal_mode and fsync left to the init command above, which sets both.
        return BenchSqliteHuey(name, filename=location, journal_mode=None, timeout=SQLITE_TIMEOUT)
    if kind == "redis" and location:
        return RedisHuey(name, url=location)
    raise RuntimeError(f"OFFLOAD_BENCH_HUEY must be sqlite:PATH or redis:URL, not {where!r}")


huey = from_env()


@huey.task()
def append_line(path: str, token: int) -> None:
    """bench.tasks.append_line's body: the clock first, then one line appended."""
    now = time.monotonic()
    append_stamp(path, token, now)


@huey.task()
def sleep_ms(path: str, token: int, ms: int) -> None:
    """Sleep ``ms`` ms, then append when it ended (huey stores no start or finish times)."""
    time.sleep(ms / 1000)
    append_stamp(path, token, time.monotonic())
