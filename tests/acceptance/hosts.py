"""Separate "hosts" on one machine: network namespaces made by the test.

Each host is a network namespace of its own (``ip netns``) joined to this
machine's namespace by a veth pair with a /30 of private addresses. The
database servers listen on loopback only, so a ``socat`` relay bound to the
machine's end of each pair forwards that host's connections to the server:
a worker in the namespace reaches the database over the link, never over the
machine's loopback, and shares no ``/tmp`` (each host gets its own TMPDIR) and
no local socket with the others. A host's clock can be set off by a fixed
offset through libfaketime (Debian's ``faketime``).

Needs root, ``ip``, ``socat`` and ``faketime``: scripts/test and CI install
the last two from Debian.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

FAKETIME_LIBRARY = next(
    (
        str(path)
        for path in sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
        if path.exists()
    ),
    "",
)


def missing() -> str | None:
    """What this machine lacks to make hosts, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "socat"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not FAKETIME_LIBRARY:
        return "libfaketime is not installed (Debian: faketime)"
    return None


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=10)


@dataclass
class Host:
    """One namespace: its name, its address, and the database address it sees."""

    name: str
    address: str
    gateway: str
    db_port: int
    tmp: Path
    relay: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def prefix(self) -> list[str]:
        """What runs a command inside this host (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name]

    def env(self, clock_offset: str | None = None) -> dict[str, str]:
        """Environment for a process of this host: its own TMPDIR, and its clock."""
        env = {"TMPDIR": str(self.tmp)}
        if clock_offset is not None:
            # libfaketime moves the monotonic clock by the same offset, which
            # only differences are taken of. (Told to leave it alone, its
            # clock_nanosleep hands Python's time.sleep an invalid deadline.)
            env.update(LD_PRELOAD=FAKETIME_LIBRARY, FAKETIME=clock_offset)
        return env

    def pids(self) -> list[int]:
        found = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=10
        ).stdout
        return [int(pid) for pid in found.split()]

    def power_off(self) -> None:
        """SIGKILL every process of this host at once, as a lost machine."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _subnet(index: int) -> tuple[str, str]:
    """This run's /30 for host ``index``: other runs (CI runs databases side by
    side) pick other ones, from their pids."""
    pid = os.getpid() & 0xFFFF
    base = 4 * index
    if base > 252:
        raise ValueError("at most 64 hosts per test run")
    prefix = f"10.{200 + (pid >> 14)}.{(pid >> 6) & 0xFF}"
    return f"{prefix}.{base + 1}", f"{prefix}.{base + 2}"


def _relay(gateway: str, target_port: int) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind((gateway, 0))
        port = int(probe.getsockname()[1])
    relay = subprocess.Popen(
        ["socat", f"TCP-LISTEN:{port},bind={gateway},fork,reuseaddr",
         f"TCP:127.0.0.1:{target_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((gateway, port), timeout=1).close()
            return relay, port
        except OSError:
            if relay.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat did not listen on {gateway}:{port}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def hosts(count: int, db_port: int) -> Iterator[list[Host]]:
    """``count`` hosts that reach the database server on ``db_port`` over their link."""
    made: list[Host] = []
    tag = f"{os.getpid() & 0xFFFF:x}"
    try:
        for index in range(count):
            name = f"offload-{tag}-{index}"
            outer, inner = f"ofa{tag}{index}", f"ofb{tag}{index}"
            gateway, address = _subnet(index)
            _run("ip", "netns", "add", name)
            host = Host(name, address, gateway, 0, Path(tempfile.mkdtemp(prefix=f"{name}-")))
            made.append(host)
            _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            _run("ip", "link", "set", inner, "netns", name)
            _run("ip", "addr", "add", f"{gateway}/30", "dev", outer)
            _run("ip", "link", "set", outer, "up")
            for step in (
                ["ip", "addr", "add", f"{address}/30", "dev", inner],
                ["ip", "link", "set", inner, "up"],
                ["ip", "link", "set", "lo", "up"],
            ):
                _run("ip", "netns", "exec", name, *step)
            host.relay, host.db_port = _relay(gateway, db_port)
        yield made
    finally:
        for host in made:
            host.power_off()
            if host.relay is not None:
                host.relay.kill()
                host.relay.wait()
            # Deleting the namespace deletes its end of the veth pair, and so the pair.
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, timeout=10)
            shutil.rmtree(host.tmp, ignore_errors=True)
