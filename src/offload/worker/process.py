"""A task process: started by the supervisor, runs one ``Worker`` until told to stop.

It is a fresh interpreter (not a fork): the supervisor's threads, locks and
database connections never leak into it, and it works the same on every OS.
The supervisor hands over its ``sys.path`` and settings module, so the process
imports exactly what ``manage.py`` did.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from offload.worker import protocol
from offload.worker.config import WorkerConfig

# Run by ``python -c``: restores the supervisor's import path before anything
# of the project is imported, then hands over to main().
BOOTSTRAP = (
    "import json, sys; spec = json.loads(sys.argv[1]); sys.path[:] = spec['sys_path']; "
    "from offload.worker.process import main; main(spec)"
)


@dataclass(frozen=True)
class ProcessSpec:
    """What a task process is started with: its worker's settings, and what
    it needs to become the same Django project as its supervisor."""

    worker: WorkerConfig
    sys_path: list[str]
    # The databases exactly as the supervisor sees them: under a test runner
    # their names were changed after settings were loaded.
    database_names: dict[str, Any]
    label: str  # for the logs: "p1", "p2"
    verbosity: int
    log_format: str
    burst: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> ProcessSpec:
        return cls(**{**fields, "worker": WorkerConfig.from_dict(fields["worker"])})


def command(spec: ProcessSpec) -> list[str]:
    return [sys.executable, "-c", BOOTSTRAP, json.dumps(spec.to_dict())]


def main(fields: dict[str, Any]) -> None:
    """Set up Django, run the worker, and exit with a code the supervisor understands."""
    try:
        spec = ProcessSpec.from_dict(fields)
        import django

        django.setup()
        from django.conf import settings

        for alias, name in spec.database_names.items():
            if alias in settings.DATABASES:
                settings.DATABASES[alias]["NAME"] = name
        from offload.worker import logs
        from offload.worker.loop import Worker
        from offload.worker.titles import set_title

        set_title(f"worker {spec.worker.worker_id}: starting")
        logs.configure(spec.verbosity, spec.log_format, spec.label)
        worker = Worker(spec.worker)
        worker.install_signal_handlers()
    except Exception:
        # Settings or code that cannot even start: restarting would fail the
        # same way, so say so and let the supervisor stop.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(protocol.EXIT_SETUP_FAILED)
    stats = worker.run(burst=spec.burst)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit, not sys.exit: a thread may still be inside a task that was given
    # back, and interpreter shutdown would wait for it.
    os._exit(protocol.EXIT_RECYCLE if stats.reason == "recycled" else protocol.EXIT_OK)
