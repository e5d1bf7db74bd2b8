"""Private database servers for tests that restart them.

Restarting the shared server would break every other test using it, so the
outage tests start their own PostgreSQL or MariaDB from the binaries already
on the machine (the ones the shared server runs), on a spare port, in a
temporary directory, and throw it away afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {timeout}s") from None
            time.sleep(0.1)


@dataclass
class Server:
    vendor: str  # "postgresql" or "mysql"
    port: int
    root: Path
    database: str = "offload_outage"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # -- queries, on a fresh connection each time (the server may have restarted) --

    def connect(self, database: str | None = None) -> Any:
        if self.vendor == "postgresql":
            import psycopg

            return psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname=database or self.database,
                autocommit=True, connect_timeout=5,
            )  # fmt: skip
        import MySQLdb

        return MySQLdb.connect(
            host="127.0.0.1", port=self.port, user="root", database=database or self.database,
            autocommit=True, connect_timeout=5,
        )  # fmt: skip

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.connect()) as conn:
            cursor = conn.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall())

    def env(self) -> dict[str, str]:
        """Environment that points the test settings at this server."""
        key = "OFFLOAD_PG_PORT" if self.vendor == "postgresql" else "OFFLOAD_MARIADB_PORT"
        # The settings' second alias ("queue") names the same database: this
        # server has only the one, and a command's checks connect to both.
        return {
            key: str(self.port),
            "OFFLOAD_TEST_DB_NAME": self.database,
            "OFFLOAD_TEST_QUEUE_DB_NAME": self.database,
        }

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        if self.vendor == "postgresql":
            self._pg_ctl("start")
        else:
            self.proc = subprocess.Popen(
                [shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults",
                 "--user=root", f"--datadir={self.root / 'data'}", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.root / 'sock'}",
                 f"--pid-file={self.root / 'pid'}", "--skip-log-bin",
                 "--innodb-flush-log-at-trx-commit=2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        _wait_until(self._ping, 30, f"{self.vendor} on port {self.port}")

    def stop(self) -> None:
        if self.vendor == "postgresql":
            self._pg_ctl("stop", "-m", "fast")
        elif self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    @property
    def system_database(self) -> str:
        return "postgres" if self.vendor == "postgresql" else "mysql"

    def _ping(self) -> None:
        with contextlib.closing(self.connect(self.system_database)) as conn:
            conn.cursor().execute("SELECT 1")

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(
            [_pg_bin("pg_ctl"), "-D", str(self.root / "data"), "-w", "-l",
             str(self.root / "log"), "-o", options, *args]
        )  # fmt: skip


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return str(found[-1])


def _as_postgres(command: list[str]) -> None:
    # initdb and the server refuse to run as root.
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextlib.contextmanager
def private_server(vendor: str) -> Iterator[Server]:
    """A fresh server of ``vendor`` with an empty database ``offload_outage``."""
    root = Path(tempfile.mkdtemp(prefix="offload-outage-"))
    server = Server(vendor, _free_port(), root)
    try:
        if vendor == "postgresql":
            if os.geteuid() == 0:
                shutil.chown(root, "postgres")
            _as_postgres(
                [_pg_bin("initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres"]
            )
        else:
            subprocess.run(
                [shutil.which("mariadb-install-db") or "mariadb-install-db", "--no-defaults",
                 "--user=root", f"--datadir={root / 'data'}",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        server.start()
        admin = Server(
            vendor, server.port, root, database="postgres" if vendor == "postgresql" else "mysql"
        )
        charset = "" if vendor == "postgresql" else " CHARACTER SET utf8mb4"
        with contextlib.closing(admin.connect()) as conn:
            conn.cursor().execute(f"CREATE DATABASE {server.database}{charset}")
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- web servers running the test project (the embedded worker's tests) --------

WEB_COMMANDS = {
    "runserver": ("-m", "django", "runserver", "127.0.0.1:{port}"),
    "gunicorn": (
        "-m", "gunicorn", "tests.wsgi:application", "--bind", "127.0.0.1:{port}",
        "--workers", "{workers}", "--graceful-timeout", "30", "--log-level", "warning",
    ),
    "gunicorn-gthread": (
        "-m", "gunicorn", "tests.wsgi:application", "--bind", "127.0.0.1:{port}",
        "--workers", "{workers}", "--threads", "4", "--graceful-timeout", "30",
        "--log-level", "warning",
    ),
    "uvicorn": (
        "-m", "uvicorn", "tests.asgi:application", "--host", "127.0.0.1", "--port", "{port}",
        "--lifespan", "on", "--log-level", "warning",
    ),
}  # fmt: skip


def web_command(kind: str, port: int, workers: int = 1) -> list[str]:
    return [part.format(port=port, workers=workers) for part in WEB_COMMANDS[kind]]


def get_json(url: str, timeout: float = 10.0) -> Any:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for_web(url: str, timeout: float = 30.0) -> None:
    _wait_until(lambda: get_json(url, timeout=2), timeout, url)


def free_port() -> int:
    return _free_port()
