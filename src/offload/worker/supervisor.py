"""The supervisor: starts the task processes, restarts the ones that die, and stops
them all cleanly.

It runs no tasks and holds no database connection while they run (it opens one
to check the set-up, and briefly to give back the tasks of a process that
crashed). Everything it knows about a process comes through two pipes (see
``protocol``): it can stop one, force one, and learn its figures and its end.

Stopping: the first SIGTERM or SIGINT tells every process to stop claiming and
to finish its running tasks within the shutdown timeout, giving back what does
not finish; a second one tells them to give everything back at once. A process
that ignores both is killed, and its tasks are given back here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import FrameType

from django.conf import settings
from django.db import connections

from offload import __version__
from offload.exceptions import BackendMisconfigured
from offload.worker import protocol
from offload.worker.children import Child
from offload.worker.groups import build_groups, start_all
from offload.worker.identity import make_worker_id
from offload.worker.losses import give_back, how_it_ended, record_lost_attempts
from offload.worker.metrics_server import WorkerMetrics
from offload.worker.process import ProcessSpec, command
from offload.worker.protocol import Counts
from offload.worker.titles import set_title
from offload.worker_options import WorkerSettings

logger = logging.getLogger("offload.worker")

# A process that dies sooner than this after starting counts as crashing at
# start-up: it is restarted after a delay that doubles up to the second figure,
# so a broken deploy does not spin the CPU.
CRASH_WINDOW_SECONDS = 10.0
RESTART_BACKOFF_SECONDS = (0.5, 30.0)
# Beyond the shutdown timeout, how long processes get to give their tasks back
# before they are killed; and after a forced stop, before they are killed.
STOP_MARGIN_SECONDS = 10.0
FORCE_MARGIN_SECONDS = 5.0
TICK_SECONDS = 0.5
STATUS_BATCH_SECONDS = 0.02
# A burst run is meant to end: after this many start-up crashes in a row of one
# process it stops and exits with an error instead of retrying forever.
BURST_CRASH_LIMIT = 3
# On the signal pipe, next to signal numbers: a stop to be started again.
_RESTART = 0


def _plain(value: object) -> object:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


@dataclass
class Supervisor:
    settings: WorkerSettings
    write: Callable[[str], None] = print
    progress: bool = False  # a live "N done" line (burst on a terminal)
    # The settings of further TASKS aliases to serve (``--backend a,b``), each
    # with task processes of its own; ``settings`` is the first alias's, and
    # its supervisor-wide values (verbosity, name, metrics port...) are used.
    more: Sequence[WorkerSettings] = ()
    worker_id: str = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.groups = build_groups([s, *self.more])
        self.group_of = {slot: g for g in self.groups for slot in g.slots}
        self.worker_id = make_worker_id(s.name)
        aliases = [g.alias for g in self.groups]
        self.metrics = WorkerMetrics(*aliases) if s.metrics_port is not None else None
        self.totals = Counts()  # of processes that have ended
        self.restarts = 0
        self.children: dict[int, Child] = {}  # by slot
        self.restart_at: dict[int, float] = {}  # slot -> when to start it again
        self.fast_crashes: dict[int, int] = {}
        self.finished_slots: set[int] = set()
        self.stopping = False
        self.forced = False
        self.signalled = False  # a stop signal came: a second one forces the stop
        self.restart_requested = False  # stopping to be started again (--reload)
        self.kill_at: float | None = None
        self.failed_setup = False
        self._selector = selectors.DefaultSelector()
        self._signal_r, self._signal_w = os.pipe()
        os.set_blocking(self._signal_r, False)
        os.set_blocking(self._signal_w, False)

    # -- start-up ---------------------------------------------------------------------

    def describe_databases(self) -> list[str]:
        """Check each group's tables are migrated; describe their servers for the banner."""
        return [self._describe_database(g.database) for g in self.groups]

    def _describe_database(self, alias: str) -> str:
        from django.db.migrations.executor import MigrationExecutor

        connection = connections[alias]
        try:
            executor = MigrationExecutor(connection)
            leaves = [n for n in executor.loader.graph.leaf_nodes() if n[0] == "offload"]
            if executor.migration_plan(leaves):
                raise BackendMisconfigured(
                    f"offload's tables on database {alias!r} are not up to date: "
                    f"run 'manage.py migrate --database {alias}'."
                )
            version = ".".join(map(str, connection.get_database_version()))
            return f"{connection.display_name} {version} (database alias {alias!r})"
        finally:
            connection.close()

    def banner(self, databases: Sequence[str]) -> str:
        s = self.settings
        limits = [f"shutdown timeout {s.shutdown_timeout:g}s"]
        if s.max_tasks_per_child:
            limits.append(f"recycle after {s.max_tasks_per_child} tasks")
        if s.max_memory_per_child:
            limits.append(f"recycle above {s.max_memory_per_child >> 20} MiB")
        lines = [f"offload {__version__} worker {self.worker_id} (pid {os.getpid()})"]
        for group, database in zip(self.groups, databases, strict=True):
            lines += group.banner_lines(database)
        lines += [
            f"  limits    {', '.join(limits)}",
            "  mode      " + ("burst: run what is due, then exit" if s.burst
                              else "until SIGTERM or Ctrl-C (twice to stop at once)"),
        ]  # fmt: skip
        return "\n".join(lines)

    def serve_metrics(self) -> None:
        """Listen on the metrics port, if asked (before ``run``, so that a port
        taken stops the command with a clear error before any task runs)."""
        if self.metrics is not None and self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_address, self.settings.metrics_port)

    # -- running ------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped (or drained, in burst mode); return the exit code."""
        shape = " ".join(f"{g.settings.processes}x{g.settings.threads}" for g in self.groups)
        set_title(f"supervisor {self.worker_id} [{shape}]")
        self._selector.register(self._signal_r, selectors.EVENT_READ, None)
        if threading.current_thread() is threading.main_thread():
            self._install_signal_handlers()
        for slot in self.group_of:
            self._start(slot)
        start_all(self.groups, self.worker_id)
        if self.metrics is not None:
            by_alias = {g.alias: g for g in self.groups}
            self.metrics.rescued = lambda alias: by_alias[alias].rescued()
        try:
            while self.children or (self.restart_at and not self.stopping):
                self._step()
        finally:
            for group in self.groups:
                group.stop_threads()
            if self.metrics is not None:
                self.metrics.stop()
            for child in list(self.children.values()):  # only after an unexpected error
                child.proc.kill()
                self._reaped(child)
            if self.progress:
                self.write("")
        return 1 if self.failed_setup else 0

    def _step(self) -> None:
        now = time.monotonic()
        for slot, when in list(self.restart_at.items()):
            if now >= when and not self.stopping:
                del self.restart_at[slot]
                self._start(slot)
        if self.kill_at is not None and now >= self.kill_at:
            self._kill_all()
        timeout = TICK_SECONDS
        if self.restart_at:
            timeout = min(timeout, max(0.0, min(self.restart_at.values()) - now))
        statuses = 0
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                self._on_signal_pipe()
            else:
                self._on_status(key.data)
                statuses += 1
        now = time.monotonic()
        for child in list(self.children.values()):
            # A task that forked keeps the status pipe open after the process
            # died; the exit code is the backstop.
            if child.proc.poll() is not None and child.slot in self.children:
                self._on_status(child)
                continue
            self._enforce_limits(child, now)
        if self.children and not self.stopping:
            for group in self.groups:
                group.heartbeat_file.beat(now)
        if self.progress:
            t = self.summary()
            self.write(f"\r{t.processed} done ({t.succeeded} successful, {t.failed} failed)")
        if statuses:
            # Busy processes write a line per task started and ended; letting
            # them pile up in the pipes for a moment turns thousands of
            # wake-ups a second into a few dozen reads, at no cost to timeouts
            # (checked every TICK_SECONDS) or to noticing an exit.
            time.sleep(STATUS_BATCH_SECONDS)

    def _enforce_limits(self, child: Child, now: float) -> None:
        """Kill a process whose task ran past its timeout or ignored its cancellation.

        Killing the process is the one way to stop any Python code, a blocking
        C call included. Its other tasks are given back (they were not at fault)
        and a replacement starts at once.
        """
        if child.culprit is None:
            overdue = child.overdue(now)
            if overdue is None:
                return
            child.culprit = (*overdue, "timeout")
        if child.proc.poll() is not None:
            return
        task_id, attempt, reason = child.culprit
        logger.error(
            "Task %s (attempt %d) %s: killing process %s",
            task_id, attempt,
            "ran past its timeout" if reason == "timeout" else "did not stop when cancelled",
            child.worker_id,
        )  # fmt: skip
        child.proc.kill()

    def _start(self, slot: int) -> None:
        s, group = self.settings, self.group_of[slot]
        control_r, control_w = os.pipe()
        status_r, status_w = os.pipe()
        worker_id = f"{self.worker_id}/p{slot}"
        if self.restarts:
            worker_id += f".{self.restarts}"  # a restarted process is a new lease owner
        spec = ProcessSpec(
            # Each process's own: its lease owner name and its ends of the pipes.
            replace(group.config, worker_id=worker_id, control_fd=control_r, status_fd=status_w),
            sys_path=sys.path,
            database_names={
                # NAME is often a pathlib.Path (BASE_DIR / "db.sqlite3").
                alias: _plain(connections[alias].settings_dict["NAME"])
                for alias in settings.DATABASES
            },
            label=f"p{slot}",
            verbosity=s.verbosity,
            log_format=s.log_format,
            burst=s.burst,
        )
        try:
            # Its own session: a Ctrl-C on the terminal reaches the supervisor
            # only, which stops the processes in order.
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                command(spec), pass_fds=(control_r, status_w), start_new_session=True
            )
        finally:
            os.close(control_r)
            os.close(status_w)
        os.set_blocking(status_r, False)
        child = Child(slot, worker_id, proc, control_w, status_r, time.monotonic())
        child.metrics = self.metrics.taker(group.alias) if self.metrics is not None else None
        self.children[slot] = child
        self._selector.register(status_r, selectors.EVENT_READ, child)
        logger.debug("Started process %s (pid %d)", worker_id, proc.pid)
        if self.stopping:
            self._send(child, protocol.FORCE if self.forced else protocol.STOP)

    def _on_status(self, child: Child) -> None:
        try:
            data = os.read(child.status, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            child.take(data)
            if child.proc.poll() is None:
                return
        self._reaped(child)

    def _reaped(self, child: Child) -> None:
        """The process ended (or is being killed): account for it and decide what next."""
        if self.children.get(child.slot) is not child:
            return
        del self.children[child.slot]
        self._selector.unregister(child.status)
        # Read the last figures it wrote before it went.
        with contextlib.suppress(OSError):
            while chunk := os.read(child.status, 65536):
                child.take(chunk)
        child.take(b"\n")  # a last line without its newline
        os.close(child.status)
        os.close(child.control)
        try:
            code = child.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            code = child.proc.wait()
        self.totals += child.counts
        self._after_exit(child, code)

    def _after_exit(self, child: Child, code: int) -> None:
        slot, lived = child.slot, time.monotonic() - child.started
        if code == protocol.EXIT_SETUP_FAILED:
            logger.error("Process %s could not start (see above); stopping", child.worker_id)
            self.failed_setup = True
            self._stop(force=True)
            return
        if child.running or child.culprit:
            # Tasks it said it started and never ended (normally none: a process
            # that stops gives its tasks back itself).
            self._record_lost_attempts(child, code)
        if code == protocol.EXIT_OK and (self.stopping or self.settings.burst):
            self.finished_slots.add(slot)
            return
        if code == protocol.EXIT_RECYCLE:
            logger.info("Process %s recycled; starting its replacement", child.worker_id)
            delay = 0.0
        elif code == protocol.EXIT_OK:
            logger.warning("Process %s stopped on its own; starting it again", child.worker_id)
            delay = 0.0
        elif child.culprit is not None:
            self._give_back(child)
            delay = 0.0  # killed on purpose: replace it at once
        else:
            how = how_it_ended(code)
            logger.error("Process %s died (%s)", child.worker_id, how)
            self._give_back(child)
            # Only a process that died before running anything is crashing at
            # start-up (a broken deploy); one killed by a task it ran (a
            # segfault, the OOM killer) is replaced at once, and the task pays
            # with its attempts instead.
            early = lived < CRASH_WINDOW_SECONDS and not child.ran_tasks
            crashes = self.fast_crashes.get(slot, 0) + 1 if early else 0
            self.fast_crashes[slot] = crashes
            first, most = RESTART_BACKOFF_SECONDS
            delay = min(first * 2 ** (crashes - 1), most) if crashes else 0.0
            if crashes >= BURST_CRASH_LIMIT and self.settings.burst:
                logger.error("It crashed %d times in a row soon after starting; giving up", crashes)
                self.failed_setup = True
                self._stop(force=True)
                return
            if delay:
                logger.warning("Restarting it in %.1fs (it crashed soon after starting)", delay)
        if self.stopping:
            return
        self.restarts += 1
        self.restart_at[slot] = time.monotonic() + delay

    def _record_lost_attempts(self, child: Child, code: int) -> None:
        record_lost_attempts(self.group_of[child.slot].backend.config, child, how_it_ended(code))

    def _give_back(self, child: Child) -> None:
        released = give_back(self.group_of[child.slot].database, child)
        if released:
            logger.warning("Gave back %d task(s) that %s was running", released, child.worker_id)
            self.totals.released += released

    # -- stopping ------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            # Only note it: the loop acts on it, outside the signal handler.
            with contextlib.suppress(OSError):
                os.write(self._signal_w, bytes([signum]))

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self, *, restart: bool = False) -> None:
        """Stop as on a first SIGTERM, from any thread; ``restart``: to be started
        again (a code change under ``--reload``), which no signal counts as."""
        with contextlib.suppress(OSError):
            os.write(self._signal_w, bytes([_RESTART if restart else signal.SIGTERM]))

    def _on_signal_pipe(self) -> None:
        try:
            received = os.read(self._signal_r, 64)
        except BlockingIOError:
            return
        for signum in received:
            if signum == _RESTART:
                if not self.stopping:
                    logger.info(
                        "Finishing running tasks (at most %gs), then restarting",
                        self.settings.shutdown_timeout,
                    )
                    self.restart_requested = True
                    self._stop(force=False)
                continue
            name = signal.Signals(signum).name
            if self.signalled or self.forced:
                logger.warning("Second %s: giving running tasks back and stopping now", name)
                self._stop(force=True)
            elif self.stopping:
                logger.info("%s received: stopping once running tasks finish", name)
            else:
                logger.info(
                    "%s received: finishing running tasks (at most %gs), then stopping",
                    name, self.settings.shutdown_timeout,
                )  # fmt: skip
                self._stop(force=False)
            self.signalled = True

    def _stop(self, force: bool) -> None:
        self.stopping = True
        self.restart_at.clear()
        if force:
            self.forced = True
            self.kill_at = time.monotonic() + FORCE_MARGIN_SECONDS
        elif self.kill_at is None:
            self.kill_at = time.monotonic() + self.settings.shutdown_timeout + STOP_MARGIN_SECONDS
        for child in self.children.values():
            self._send(child, protocol.FORCE if force else protocol.STOP)

    def _send(self, child: Child, message: bytes) -> None:
        with contextlib.suppress(OSError):  # it is already gone; its status pipe says so
            os.write(child.control, message)

    def _kill_all(self) -> None:
        self.kill_at = None
        for child in list(self.children.values()):
            logger.error("Process %s did not stop in time: killing it", child.worker_id)
            child.proc.kill()
            child.proc.wait()
            self._reaped(child)

    def summary(self) -> Counts:
        """What every process did so far, ended or still running."""
        return sum((c.counts for c in self.children.values()), self.totals)
