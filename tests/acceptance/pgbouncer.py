"""A private PgBouncer in transaction mode, in front of the test PostgreSQL.

Started from Debian's ``pgbouncer`` binary (scripts/test and CI install it),
on a spare loopback port, with its files in a temporary directory; stopped
and thrown away afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def available() -> bool:
    return os.access(BINARY, os.X_OK)


@dataclass
class Bouncer:
    port: int
    root: Path

    def admin(self, command: str) -> str:
        """A command of PgBouncer's admin console (simple query protocol: psql)."""
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-At",
             "-c", command, "pgbouncer"],
            check=True, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip


@contextmanager
def running(pg_host: str, pg_port: str, pg_user: str, pool_size: int = 4) -> Iterator[Bouncer]:
    root = Path(tempfile.mkdtemp(prefix="offload-pgbouncer-"))
    # PgBouncer refuses to run as root: it then drops to "nobody", who must
    # write its log and pid file here.
    root.chmod(0o777)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    (root / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={pg_host} port={pg_port} user={pg_user}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 200\n"
        f"admin_users = {pg_user}\n"
        f"logfile = {root / 'pgbouncer.log'}\npidfile = {root / 'pgbouncer.pid'}\n"
    )
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [BINARY, *user, str(root / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (root / "pgbouncer.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"PgBouncer did not start: {log}") from None
                time.sleep(0.05)
        yield Bouncer(port, root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
