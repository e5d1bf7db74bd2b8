"""Worker processes: start, stop, and read their CPU time and memory from /proc.

Each worker starts in a session of its own, so that its process group holds
the worker and every process it starts: stopping, reaping and measuring work
on the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STOP_TIMEOUT = 30.0
POLL_SECONDS = 0.05


class BenchError(Exception):
    """A run that cannot give a trustworthy figure: it is reported, never averaged in."""


@dataclass
class Group:
    """Processes started together; their group ids are their own pids."""

    processes: list[subprocess.Popen[bytes]]
    problems: list[str]
    # Peak resident memory seen per pid (VmHWM, bytes), over the group's life.
    peak_rss: dict[int, int] = field(default_factory=dict)

    @property
    def pgids(self) -> set[int]:
        return {p.pid for p in self.processes}

    def members(self) -> list[int]:
        """Pids of every live process in these groups, and of their descendants.

        Descendants too: offload's supervisor starts each task process in a
        session of its own, so a process group alone would miss them.
        """
        parents: dict[int, int] = {}
        found: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(entry / "stat")
            if fields is None or fields[0] == "Z":  # a zombie has exited already
                continue
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            if int(fields[2]) in self.pgids:
                found.add(pid)
        children: dict[int, list[int]] = {}
        for pid, parent in parents.items():
            children.setdefault(parent, []).append(pid)
        stack = list(found | (self.pgids & parents.keys()))
        while stack:
            pid = stack.pop()
            found.add(pid)
            stack.extend(child for child in children.get(pid, ()) if child not in found)
        return sorted(found)

    def sample_memory(self) -> None:
        for pid in self.members():
            peak = _status_bytes(pid, "VmHWM")
            if peak is not None:
                self.peak_rss[pid] = max(peak, self.peak_rss.get(pid, 0))

    def cpu_seconds(self) -> float:
        """CPU time the live members have used, in seconds.

        From /proc/PID/schedstat (nanoseconds), not the clock ticks of
        /proc/PID/stat, whose 10 ms steps are too coarse for an idle worker.
        """
        total = 0
        for pid in self.members():
            try:
                total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return total / 1e9

    def exit_status(self) -> int | None:
        """The exit status of the first process that has exited, or None while all run."""
        exited = [p.returncode for p in self.processes if p.poll() is not None]
        return exited[0] if exited else None

    def wait_until(
        self, done: Callable[[], bool], timeout: float, failure: str, *, sample: bool = False
    ) -> None:
        """Poll ``done`` until it holds (sampling memory if ``sample``: a walk of
        /proc each poll, left out where it would cost a timed drain); ``failure``
        (what did not happen) says why in the ``BenchError`` raised when a
        process exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not done():
            if sample:
                self.sample_memory()
            status = self.exit_status()
            if status is not None:
                raise BenchError(f"{failure}: it exited with status {status}")
            if time.monotonic() > deadline:
                raise BenchError(f"{failure} within {timeout:.0f}s")
            time.sleep(POLL_SECONDS)

    def wait(self, timeout: float) -> list[int]:
        """Wait for every process to exit, sampling memory; their exit codes."""
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in self.processes):
            self.sample_memory()
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(POLL_SECONDS * 2)
        return [int(p.returncode) for p in self.processes]

    def stop(self) -> list[int]:
        """SIGTERM (a graceful stop), then SIGKILL after STOP_TIMEOUT; the exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=STOP_TIMEOUT))
            except subprocess.TimeoutExpired:
                self.problems.append(
                    f"a worker did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM; killed"
                )
                os.killpg(process.pid, signal.SIGKILL)
                codes.append(process.wait())
        self.reap()
        return codes

    def reap(self) -> None:
        """Make sure nothing a worker started outlives it; record it if something did."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.members():
            if time.monotonic() > deadline:
                self.problems.append(
                    "processes started by a worker were still running "
                    f"{STOP_TIMEOUT:.0f}s after it exited; killed"
                )
                for pid in self.members():  # only ever these workers' own processes
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return
            time.sleep(POLL_SECONDS)


def run_to_end(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run one measuring child to its end; its exit status.

    On Ctrl-C the child is sent SIGTERM (to stop its workers and drop its
    database; after a Ctrl-C of the terminal it is doing so already) and is
    waited for before the interrupt goes on.
    """
    child = subprocess.Popen(command, cwd=cwd, env=env)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGTERM)
        child.wait()
        raise


def start(commands: list[list[str]], cwd: Path, env: dict[str, str], problems: list[str]) -> Group:
    processes = [
        subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        for command in commands
    ]
    return Group(processes, problems)


def _stat_fields(path: Path) -> list[str] | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def _status_bytes(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError):
        return None
    return None
