"""Wake idle workers of this host at once when a task is enqueued, where the
database has no LISTEN/NOTIFY (SQLite, MariaDB).

Each worker process binds a Unix datagram socket in a directory of its own
user's, named after the database, and watches it with the rest of its wake-up
sources. After an enqueue commits, the enqueuing process sends one datagram
(the queue names) to every socket there. That costs the enqueue a few
microseconds per worker process (the listing is read again only when the
directory changed), and turns an idle worker's reaction from its polling
step (20 ms doubling to ``POLL_INTERVAL``) into well under a millisecond.

It is only an accelerator: workers still poll, so a task enqueued from another
host, another container (another ``/tmp``) or another user is still found at
the next poll. A datagram that cannot be delivered is dropped: a full socket
buffer means its worker is already due to wake; a socket whose process died
is unlinked by the next sender that finds it dead.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger("offload.worker")

# An enqueuing process lists the workers' sockets again when the directory's
# modification time changes (a worker came or went), and at least this often:
# the time has a granularity of a clock tick, so a socket bound in the same
# tick as the last listing would otherwise wait for the next change.
LISTING_SECONDS = 1.0
# A datagram holds queue names; more than this (many queues in one bulk
# enqueue) is sent as "every queue" instead.
MAX_PAYLOAD = 2048
ALL = b"*"


def wake_key(settings_dict: dict[str, Any], vendor: str) -> str:
    """What identifies one database for the processes of one host."""
    if vendor == "sqlite":
        name = str(settings_dict.get("NAME") or "")
        return f"sqlite:{os.path.realpath(name)}"
    host, port = settings_dict.get("HOST") or "localhost", settings_dict.get("PORT") or ""
    return f"{vendor}:{host}:{port}:{settings_dict.get('NAME')}"


def wake_dir(key: str) -> Path:
    """This user's directory of wake-up sockets for database ``key``, created if missing.

    Private to the user (0700), and refused if it is anything else (a link, or
    another user's), so nobody else can plant sockets or read the queue names.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    path = Path(tempfile.gettempdir()) / f"offload-wake-{os.getuid()}-{digest}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{path} is not a private directory of this user")
    return path


class WakeSocket:
    """A worker process's end: a socket to ``select()`` on, and what it was sent."""

    def __init__(self, key: str) -> None:
        self._dir = wake_dir(key)
        # The pid makes it easy to tell whose it is; the token keeps a reused
        # pid from meeting a dead process's file.
        self.path = self._dir / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._socket.bind(str(self.path))

    def fileno(self) -> int:
        return self._socket.fileno()

    def read(self) -> set[str] | None:
        """The queues named since the last read; None means any queue."""
        queues: set[str] = set()
        anything = False
        while True:  # one read empties the socket
            try:
                data = self._socket.recv(MAX_PAYLOAD + 1)
            except (BlockingIOError, InterruptedError):
                return None if anything else queues
            if data == ALL:
                anything = True
            else:
                queues.update(data.decode(errors="replace").split("\n"))

    def close(self) -> None:
        self._socket.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Waker:
    """An enqueuing process's end: sends to every worker socket of one database."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._targets: list[str] = []
        self._listed_at = float("-inf")
        self._listed_mtime = -1
        self._checked_dir: Path | None = None

    def wake(self, queues: Iterable[str]) -> None:
        payload = "\n".join(sorted(set(queues))).encode()
        if len(payload) > MAX_PAYLOAD:
            payload = ALL
        with self._lock:
            for target in self._list():
                try:
                    self._socket.sendto(payload, target)
                except (BlockingIOError, InterruptedError):
                    pass  # its buffer is full: that worker has wake-ups waiting
                except (ConnectionRefusedError, FileNotFoundError):
                    # Its process is gone (a killed worker cannot unlink it).
                    self._targets.remove(target)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(target)
                except OSError as exc:
                    logger.debug("Could not wake the worker at %s: %s", target, exc)

    def _list(self) -> list[str]:
        now = time.monotonic()
        try:
            directory = self._directory()
            mtime = os.stat(directory).st_mtime_ns
            if mtime != self._listed_mtime or now - self._listed_at >= LISTING_SECONDS:
                self._listed_at, self._listed_mtime = now, mtime
                self._targets = [entry.path for entry in os.scandir(directory)]
        except OSError:
            self._targets = []  # no wake-ups from here: the workers still poll
        return list(self._targets)

    def _directory(self) -> Path:
        # Checked (private, ours) once; a stat per enqueue is all it costs after.
        if self._checked_dir is None:
            self._checked_dir = wake_dir(self._key)
        return self._checked_dir


_wakers: dict[str, Waker] = {}
_wakers_lock = threading.Lock()


def waker_for(key: str) -> Waker:
    """This process's waker for database ``key`` (one socket per database)."""
    with _wakers_lock:
        waker = _wakers.get(key)
        if waker is None:
            waker = _wakers[key] = Waker(key)
        return waker
