"""Worker names: unique per process, readable in logs and the admin."""

import os
import socket

from django.utils.crypto import get_random_string

from offload.limits import MAX_NAME_LENGTH


def make_worker_id(name: str | None = None) -> str:
    """``name`` or the host name, then the pid and a random suffix (pids are reused)."""
    base = name or socket.gethostname().split(".")[0] or "worker"
    suffix = f":{os.getpid()}:{get_random_string(6)}"
    return base[: MAX_NAME_LENGTH - len(suffix)] + suffix
