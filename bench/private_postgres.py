"""A PostgreSQL cluster of the benchmark's own, in a temporary directory.

The capacity figures (the server's CPU time and WAL bytes per task) are
cluster-wide counters: on the shared test server, anything else running would
be counted as offload's. A private cluster on a spare loopback port counts
only what the benchmark does. It uses the server binaries already on the
machine (Debian's ``postgresql``), started as the ``postgres`` user when run as
root, and is stopped and thrown away afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bin_dir() -> Path:
    """The newest PostgreSQL server binaries on this machine."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return found[-1].parent


def _as_owner(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Cluster:
    port: int
    data: Path
    postmaster: int

    def cpu_seconds(self) -> float:
        """CPU the whole server has used: the postmaster, its live children
        (backends, WAL writer, checkpointer, autovacuum), and, through the
        postmaster's ``cutime``/``cstime``, every child that has exited."""
        fields = _stat(self.postmaster)
        if fields is None:
            raise RuntimeError("the private PostgreSQL server is gone")
        ticks = sum(int(value) for value in fields[11:15])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                child = _stat(int(entry.name))
                if child is not None and int(child[1]) == self.postmaster:
                    ticks += int(child[11]) + int(child[12])
        return ticks / CLOCK_TICKS


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


@contextmanager
def cluster(cpus: str | None = None) -> Iterator[Cluster]:
    """A fresh cluster (trust auth, user ``postgres``); pinned to ``cpus`` if given."""
    root = Path(tempfile.mkdtemp(prefix="offload-capacity-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    binaries = bin_dir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    subprocess.run(
        _as_owner([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                   "-E", "UTF8", "--no-sync"]),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB"
    start = _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                       "-l", str(root / "server.log"), "-w", "start"])  # fmt: skip
    if cpus is not None:
        # Children inherit the affinity: every backend runs on these CPUs.
        start = ["taskset", "-c", cpus, *start]
    subprocess.run(start, check=True, capture_output=True, timeout=120)
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        yield Cluster(port, data, postmaster)
    finally:
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True, timeout=120,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
