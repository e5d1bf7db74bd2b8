"""``--reload``: the supervisor in a child process that a parent restarts on code changes.

Django's own ``run_with_reloader`` would do the restarting, but it stops
abruptly: a SIGTERM to its parent kills the child, a change ends the child's
interpreter with the supervisor on a daemon thread, and a Ctrl-C reaches both
processes. Any of these cut running tasks short. So offload keeps Django's
file watching and child arguments and does the rest itself:

- The parent starts the child in its own process group and forwards each
  SIGTERM or SIGINT it receives to it, once, then waits for it to exit: the
  child's supervisor stops exactly as without ``--reload`` (a second signal
  forces the stop). A Ctrl-C on the terminal reaches the parent only, so the
  child sees it once, not twice.
- The child runs the supervisor on its main thread, with its usual signal
  handlers, and Django's file watcher on a side thread. A change asks the
  supervisor to stop as on a first SIGTERM; once it has, the child exits with
  ``RESTART_CODE`` and the parent starts a new one.
- The child holds the read end of a pipe whose write end only the parent has:
  if the parent dies (even by SIGKILL) the child stops as on a SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.utils import autoreload

logger = logging.getLogger("offload.worker")

RESTART_CODE = 3  # what Django's reloader child exits with to be restarted
_PARENT_FD = "OFFLOAD_RELOADER_PARENT_FD"


def in_child() -> bool:
    """Whether this process is the reloader's child (the one that supervises)."""
    return os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"


def run_parent() -> int:
    """Start the child again each time it asks to be restarted; return its last exit code."""
    autoreload.ensure_echo_on()  # here, in the terminal's foreground process group
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    args = autoreload.get_child_arguments()
    while True:
        alive_r, alive_w = os.pipe()
        os.set_inheritable(alive_r, True)
        env = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true", _PARENT_FD: str(alive_r)}
        try:
            child = subprocess.Popen(args, env=env, close_fds=False, process_group=0)  # noqa: S603
        finally:
            os.close(alive_r)
        if stopping:  # a signal came before there was a child to forward it to
            child.send_signal(signal.SIGTERM)
        code = child.wait()
        os.close(alive_w)
        if code != RESTART_CODE or stopping:
            return code if code >= 0 else 128 - code


class Watcher:
    """In the child: Django's file watcher on a side thread, and the parent's lifeline.

    A change calls ``on_change`` (instead of Django's exit) and sets ``changed``.
    """

    def __init__(self) -> None:
        self.changed = threading.Event()
        self._on_change: Callable[[], None] = lambda: None
        self._reloader = autoreload.get_reloader()

    def start(self, on_change: Callable[[], None], on_parent_gone: Callable[[], None]) -> None:
        self._on_change = on_change
        autoreload.file_changed.connect(self._changed, weak=False, dispatch_uid=id(self))
        threading.Thread(
            target=self._reloader.run, args=(threading.main_thread(),),
            name="offload-reloader", daemon=True,
        ).start()  # fmt: skip
        fd = os.environ.get(_PARENT_FD)
        if fd is not None and fd.isdigit():
            threading.Thread(
                target=_wait_for_eof, args=(int(fd), on_parent_gone),
                name="offload-reloader-parent", daemon=True,
            ).start()  # fmt: skip

    def stop(self) -> None:
        autoreload.file_changed.disconnect(dispatch_uid=id(self))
        self._reloader.stop()

    def _changed(self, sender: Any, file_path: Any, **kwargs: Any) -> bool:
        if not self.changed.is_set():
            logger.info("%s changed: restarting", file_path)
            self.changed.set()
            self._on_change()
        return True  # handled: Django does not exit


def _wait_for_eof(fd: int, then: Callable[[], None]) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 1):
            pass
    logger.warning("The reloader's parent process is gone: stopping")
    then()
