"""The benchmark's database on its server: connect, create it fresh, drop it.

PostgreSQL and MariaDB get a database of the benchmark's own
(``bench.settings.BENCH_DB_NAME``), SQLite a file of its own; each run starts
on a fresh one and drops it at the end.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from bench.workloads import BenchError


class Unreachable(BenchError):
    """The database server did not accept a connection (down, wrong address or credentials)."""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def connect_server(database: str) -> Any:
    """A DB-API connection to the server's maintenance database, in autocommit.

    Never the bench database itself: it may not exist yet, and it cannot be
    dropped while connected to.
    """
    conf: dict[str, Any] = settings.DATABASES["default"]
    where = f"{conf['HOST']}:{conf['PORT']}"
    if database == "postgres":
        import psycopg

        try:
            return psycopg.connect(
                host=conf["HOST"], port=conf["PORT"], user=conf["USER"],
                password=conf["PASSWORD"] or None, dbname="postgres", autocommit=True,
                connect_timeout=5,
            )  # fmt: skip
        except psycopg.OperationalError as exc:
            raise Unreachable(f"cannot connect to PostgreSQL at {where}: {one_line(exc)}") from exc
    import MySQLdb  # type: ignore[import-untyped]

    try:
        # No database named: MariaDB needs none to create or drop one.
        server = MySQLdb.connect(
            host=conf["HOST"], port=int(conf["PORT"]), user=conf["USER"],
            password=conf["PASSWORD"], connect_timeout=5,
        )  # fmt: skip
    except MySQLdb.OperationalError as exc:
        raise Unreachable(f"cannot connect to MariaDB at {where}: {one_line(exc)}") from exc
    server.autocommit(True)
    return server


def one_line(exc: BaseException) -> str:
    # psycopg's messages span lines; the table's notes are one line each.
    return " ".join(str(exc).split())


def drop_statement(database: str) -> str:
    from bench import settings as bench_settings

    name = bench_settings.BENCH_DB_NAME
    if database == "postgres":
        # FORCE: a run that was killed may have left a connection open.
        return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    return f"DROP DATABASE IF EXISTS `{name}`"


def recreate_database(database: str) -> str:
    """Drop and create the bench database (or SQLite file); return the server's version."""
    from bench import settings as bench_settings

    if database == "sqlite":
        remove_sqlite_files(bench_settings.SQLITE_PATH)
        return sqlite3.sqlite_version
    name = bench_settings.BENCH_DB_NAME
    server = connect_server(database)
    try:
        cursor = server.cursor()
        cursor.execute(drop_statement(database))
        if database == "postgres":
            cursor.execute(f'CREATE DATABASE "{name}"')
            cursor.execute("SHOW server_version")
        else:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cursor.execute("SELECT VERSION()")
        row = cursor.fetchone()
    finally:
        server.close()
    return str(row[0]) if row else "?"


def drop_database(database: str) -> None:
    from bench import settings as bench_settings

    # This process's own connection would keep the database in use.
    connections.close_all()
    try:
        if database == "sqlite":
            remove_sqlite_files(bench_settings.SQLITE_PATH)
            return
        server = connect_server(database)
        try:
            server.cursor().execute(drop_statement(database))
        finally:
            server.close()
    except Exception as exc:
        # Reported, not raised: the measurements are taken and about to be written.
        log(
            f"{database}: could not drop the bench database {bench_settings.BENCH_DB_NAME!r}: {exc}"
        )


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
