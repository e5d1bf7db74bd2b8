"""The flags of ``offload status`` and ``offload health``, and what they run; the
management command only adds these parsers and hands off to :func:`run`."""

import argparse
import json
import time
from collections.abc import Callable
from io import TextIOBase
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.tasks import task_backends

from offload.backend import DatabaseBackend
from offload.operations import health, status, status_text

SUBCOMMANDS = ("status", "health")
# Clears a terminal and puts the cursor home, for each frame of --watch.
REDRAW = "\x1b[H\x1b[2J"


def _positive(kind: type[float] | type[int], least: float = 0) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= least or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be {least:g} or more, got {text!r}")
        return value

    return parse


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    """Add ``status`` and ``health`` to the subcommands ``sub``; return their parsers."""
    shown = sub.add_parser(
        "status",
        help="Show queues, workers, recent failures and schedules.",
        description="What offload is doing now; every read is bounded.",
    )
    shown.add_argument(
        "--backend", default="default",
        help="TASKS alias, or several, comma-separated (default: default)",
    )  # fmt: skip
    shown.add_argument("--all-backends", action="store_true", help="every offload backend in TASKS")
    shown.add_argument("--json", action="store_true", help="one JSON object (a stable shape)")
    shown.add_argument(
        "--watch", nargs="?", const=2.0, default=None, type=_positive(float, least=0.1),
        metavar="SECONDS",
        help="redraw every SECONDS (2) until Ctrl-C",
    )  # fmt: skip
    probe = sub.add_parser(
        "health",
        help="Check the database, workers, lag and failures; answer with an exit code.",
        description=(
            "Exit 0 if healthy, 1 if a check fails, 2 on a usage error, 3 if the "
            "database does not answer or is not migrated."
        ),
    )
    add = probe.add_argument
    add("--backend", default="default", help="TASKS alias (default: default)")
    add("--json", action="store_true", help="one JSON object (a stable shape)")
    add("--worker", action="store_true", help="a live worker must serve the queues")
    add("--queue", action="append", default=[], help="a queue to check (repeatable; default all)")
    add("--max-lag", type=_positive(float), metavar="SECONDS",
        help="fail if the oldest due task waits longer")  # fmt: skip
    add("--max-failures", type=_positive(int), metavar="N",
        help="fail if more than N tasks failed in the window")  # fmt: skip
    add("--window", type=_positive(float, least=1), default=3600.0, metavar="SECONDS",
        help="the window of --max-failures (3600)")  # fmt: skip
    add("--liveness", action="store_true",
        help="check only the heartbeat file's age, no database")  # fmt: skip
    add("--heartbeat-file", metavar="PATH", help="default: OPTIONS['HEARTBEAT_FILE']")
    add("--max-age", type=_positive(float), metavar="SECONDS",
        help="of the heartbeat file (default: 3 x HEARTBEAT_SECONDS)")  # fmt: skip
    return [shown, probe]


def _backend(alias: str) -> DatabaseBackend:
    if alias not in task_backends.settings:
        known = ", ".join(sorted(task_backends.settings))
        raise CommandError(f"--backend {alias!r}: no such backend in TASKS (there are: {known}).",
                           returncode=health.USAGE)  # fmt: skip
    backend = task_backends[alias]
    if not isinstance(backend, DatabaseBackend):
        raise CommandError(f"TASKS[{alias!r}] is not an offload backend.", returncode=health.USAGE)
    if backend.config.problems:
        raise CommandError(" ".join(backend.config.problems), returncode=health.USAGE)
    return backend


def _aliases(options: dict[str, Any]) -> list[str]:
    """The aliases ``--backend a,b`` or ``--all-backends`` name."""
    if options.get("all_backends"):
        if options["backend"] != "default":
            raise CommandError("--all-backends and --backend: give one or the other.",
                               returncode=health.USAGE)  # fmt: skip
        found = [a for a in task_backends.settings if isinstance(task_backends[a], DatabaseBackend)]
        if not found:
            raise CommandError("--all-backends: TASKS has no offload.backend.DatabaseBackend.",
                               returncode=health.USAGE)  # fmt: skip
        return found
    return list(dict.fromkeys(a.strip() for a in options["backend"].split(",")))


def run(options: dict[str, Any], out: TextIOBase) -> int:
    """Run ``status`` or ``health`` as ``options`` say; return the exit code."""
    aliases = _aliases(options)
    backends = [_backend(alias) for alias in aliases]
    if options["subcommand"] == "status":
        several = len(backends) > 1 or bool(options.get("all_backends"))
        return _status(backends, several, options, out)
    if len(backends) > 1:
        raise CommandError("offload health checks one backend: run one probe per alias.",
                           returncode=health.USAGE)  # fmt: skip
    return _health(backends[0], options, out)


def _status(
    backends: list[DatabaseBackend], several: bool, options: dict[str, Any], out: TextIOBase
) -> int:
    interval = options["watch"]
    redraw = interval is not None and not options["json"] and out.isatty()
    try:
        while True:
            text = _frames(backends, several, options["json"], watching=interval is not None)
            out.write((REDRAW if redraw else "") + text + "\n")
            out.flush()
            if interval is None:
                return health.HEALTHY
            time.sleep(interval)
    except KeyboardInterrupt:
        # Ctrl-C is how --watch ends: not an error.
        out.write("\n")
        return health.HEALTHY


def _frames(
    backends: list[DatabaseBackend], several: bool, as_json: bool, *, watching: bool
) -> str:
    """One backend's status as ``_status_frame`` says it; several backends'
    one after the other, or in JSON as one object whose ``backends`` lists them."""
    frames = [_status_frame(b, as_json, watching=watching) for b in backends]
    if not several:
        return frames[0]
    if not as_json:
        return "\n\n".join(
            frame if frame.startswith("offload status: backend") else f"[{b.alias}] {frame}"
            for b, frame in zip(backends, frames, strict=True)
        )
    found = [{"backend": b.alias, **json.loads(f)} for b, f in zip(backends, frames, strict=True)]
    return json.dumps({"version": status.SHAPE_VERSION, "backends": found})


def _status_frame(backend: DatabaseBackend, as_json: bool, *, watching: bool) -> str:
    try:
        data = status.collect(backend)
    except DatabaseError as exc:
        if not watching:
            raise
        # A live view outlives a database restart: say so, and read again next time.
        connections[backend.config.database].close()
        if as_json:
            return json.dumps({"version": status.SHAPE_VERSION, "error": str(exc).strip()})
        return f"offload status: cannot read the database: {str(exc).strip()}"
    return json.dumps(data) if as_json else status_text.render(data)


def _health(backend: DatabaseBackend, options: dict[str, Any], out: TextIOBase) -> int:
    config = backend.config
    if options["liveness"]:
        asked = {"--worker": "worker", "--queue": "queue", "--max-lag": "max_lag",
                 "--max-failures": "max_failures"}  # fmt: skip
        others = ", ".join(f for f, key in asked.items() if options[key] not in (None, False, []))
        if others:
            raise CommandError(
                f"--liveness checks only the heartbeat file; drop {others}.",
                returncode=health.USAGE,
            )
        path = options["heartbeat_file"] or config.heartbeat_file
        if not path:
            raise CommandError("--liveness needs --heartbeat-file or OPTIONS['HEARTBEAT_FILE'].",
                               returncode=health.USAGE)  # fmt: skip
        max_age = options["max_age"]
        report = health.liveness(path, 3 * config.heartbeat_seconds if max_age is None else max_age)
    else:
        if options["heartbeat_file"] or options["max_age"] is not None:
            raise CommandError("--heartbeat-file and --max-age go with --liveness.",
                               returncode=health.USAGE)  # fmt: skip
        declared = backend.queues
        unknown = sorted(set(options["queue"]) - declared) if declared else []
        if unknown:
            # A misspelt queue would otherwise have no lag and pass for ever.
            raise CommandError(
                f"--queue {', '.join(unknown)}: not in TASKS[{backend.alias!r}]['QUEUES'] "
                f"({', '.join(sorted(declared))}).",
                returncode=health.USAGE,
            )
        request = health.HealthRequest(
            worker=options["worker"], queues=tuple(dict.fromkeys(options["queue"])),
            max_lag=options["max_lag"], max_failures=options["max_failures"],
            window=options["window"],
        )  # fmt: skip
        report = health.check(backend, request)
    out.write((json.dumps(report.as_dict()) if options["json"] else report.as_text()) + "\n")
    return report.code
