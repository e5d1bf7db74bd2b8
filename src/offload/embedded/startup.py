"""When a web process starts its embedded worker, and how it stops it.

The first request a process serves starts it (Django's ``request_started``),
for every offload backend whose ``OPTIONS["EMBEDDED"]["ENABLED"]`` is true.
A process that serves requests is the right one on every server: gunicorn's
workers after their fork (never the master), uvicorn's and Daphne's server
process, and ``runserver``'s child (the autoreloader's parent serves none);
management commands and the master of a preloading server serve none. A
server hook may call ``start()`` earlier (gunicorn's ``post_worker_init``):
the request then finds it started.

Each host records the process it was started in: after a fork the child
starts its own (threads do not survive a fork, and the parent's slot is the
parent's). The process's exit stops it (``atexit``): running tasks get the
shutdown timeout, then go back to the queue with a record of why.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.tasks import task_backends

from offload.embedded_options import parse_embedded

if TYPE_CHECKING:
    from offload.embedded.host import EmbeddedHost

logger = logging.getLogger("offload.embedded")

_lock = threading.Lock()
_hosts: dict[str, EmbeddedHost] = {}
_checked_pid: int | None = None  # the process whose first request was seen


def start() -> list[EmbeddedHost]:
    """Start this process's embedded workers (once per process); return them."""
    global _checked_pid
    with _lock:
        pid = os.getpid()
        if _checked_pid != pid:
            _hosts.clear()  # a fork's copies: their threads stayed in the parent
            _checked_pid = pid
            for alias, host in _new_hosts():
                _hosts[alias] = host
                host.start()
                atexit.register(host.stop)
        return list(_hosts.values())


def _new_hosts() -> list[tuple[str, EmbeddedHost]]:
    # Imported here: a process that never runs one never loads the worker.
    from offload.backend import DatabaseBackend
    from offload.embedded.host import EmbeddedHost

    found = []
    for alias in _enabled_aliases():
        backend = task_backends[alias]
        if not isinstance(backend, DatabaseBackend):
            continue
        settings, problems = parse_embedded(backend.config.embedded)
        if settings.enabled and not problems:
            backend.ensure_usable()
            found.append((backend.alias, EmbeddedHost(backend, settings)))
    return found


def _enabled_aliases() -> list[str]:
    """Backends whose raw settings turn it on: the others are not even built."""
    aliases = []
    for alias, config in getattr(settings, "TASKS", {}).items():
        options = config.get("OPTIONS") if isinstance(config, dict) else None
        embedded = options.get("EMBEDDED") if isinstance(options, dict) else None
        if isinstance(embedded, dict) and embedded.get("ENABLED") is True:
            aliases.append(alias)
    return aliases


def on_request_started(sender: object = None, **kwargs: Any) -> None:
    """``request_started`` receiver: the first request of a process starts its workers."""
    if _checked_pid == os.getpid():
        return  # every later request: one comparison
    if getattr(sender, "__module__", "") == "django.test.client":
        # A test suite's client is no server: a worker would run the tasks
        # that the project's own tests enqueue, behind their backs.
        return
    try:
        start()
    except Exception:
        # A worker that cannot start must not fail the site's requests.
        logger.exception("The embedded worker could not start")


def stop() -> None:
    """Stop this process's embedded workers now (tests and servers' exit hooks)."""
    with _lock:
        hosts = list(_hosts.values()) if _checked_pid == os.getpid() else []
    for host in hosts:
        host.stop()
