"""The heartbeat file: a liveness signal for the worker on this host that a
probe reads without the database (``offload health --liveness``).

The supervisor replaces the file every ``HEARTBEAT_SECONDS`` while its task
processes run. Its content is the time written and the supervisor's pid, for a
person who looks; the probe reads only its modification time. The file is
written beside its final path and renamed over it, so a probe never sees it
half written, and it is removed when the supervisor stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("offload.worker")


class HeartbeatFile:
    """Touches ``path`` at most every ``interval`` seconds (never, if ``path`` is empty)."""

    def __init__(self, path: str, interval: float) -> None:
        self.path = Path(path) if path else None
        self.interval = interval
        self._next = 0.0
        self._failed = False

    def beat(self, now: float) -> None:
        if self.path is None or now < self._next:
            return
        self._next = now + self.interval
        try:
            write(self.path, f"{time.time():.3f} {os.getpid()}\n")
        except OSError as exc:
            # Said once: a probe that reads a missing or old file says the rest.
            if not self._failed:
                logger.error("Cannot write the heartbeat file %s: %s", self.path, exc)
            self._failed = True
        else:
            self._failed = False

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


def write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
