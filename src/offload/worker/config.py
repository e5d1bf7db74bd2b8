"""What one worker process is told: its backend, queues, capacity and limits.

The supervisor builds one ``WorkerConfig`` per task process and hands it over
serialised (``to_dict``, inside the process's ``ProcessSpec``); the process
turns it back into the same object (``from_dict``). Tests and embedded
workers build it directly. The backend lookup and the queue filter live here
too: the supervisor, the management command and the worker all check them
the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from django.tasks import task_backends

from offload.backend import DatabaseBackend
from offload.exceptions import BackendMisconfigured
from offload.store import ALL_QUEUES, QueueFilter


@dataclass(frozen=True)
class WorkerConfig:
    """One worker's settings, fixed for its life."""

    backend: str = "default"
    _: KW_ONLY
    queues: tuple[str, ...] | None = None  # None: every queue not excluded
    exclude_queues: tuple[str, ...] = ()
    # Every sync task of these queues is CPU-bound (see worker.cpu_bound).
    cpu_bound_queues: tuple[str, ...] = ()
    name: str | None = None
    worker_id: str | None = None  # None: made from the name
    threads: int = 1
    async_concurrency: int = 100
    batch_size: int | None = None  # None: the backend's CLAIM_BATCH_SIZE
    max_tasks: int | None = None  # recycle after this many tasks
    max_memory: int | None = None  # recycle above this many bytes
    shutdown_timeout: float = 25.0
    control_fd: int | None = None  # the supervisor's commands (see protocol)
    status_fd: int | None = None  # where figures and task lines go
    log_sql: bool = False
    supervisor_pid: int | None = None  # None: this process
    # Off inside a web process (offload.embedded): the title is the server's.
    process_title: bool = True
    # Count tasks for the supervisor's metrics port (see worker.task_metrics).
    metrics: bool = False

    def __post_init__(self) -> None:
        # Lists are accepted (they come from JSON and from callers): kept as tuples.
        if self.queues is not None:
            object.__setattr__(self, "queues", tuple(self.queues))
        object.__setattr__(self, "exclude_queues", tuple(self.exclude_queues))
        object.__setattr__(self, "cpu_bound_queues", tuple(self.cpu_bound_queues))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: how it travels to a task process."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> WorkerConfig:
        return cls(**fields)


def get_backend(alias: str) -> DatabaseBackend:
    """The offload backend ``TASKS[alias]``, checked usable."""
    try:
        backend = task_backends[alias]
    except Exception as exc:  # InvalidTaskBackend, with Django's message
        raise BackendMisconfigured(str(exc)) from exc
    if not isinstance(backend, DatabaseBackend):
        raise BackendMisconfigured(
            f"TASKS[{alias!r}] uses {type(backend).__module__}.{type(backend).__qualname__}; "
            "the offload worker runs tasks of offload.backend.DatabaseBackend only."
        )
    backend.ensure_usable()
    return backend


def queue_filter(
    backend: DatabaseBackend, only: Sequence[str] | None, excluded: Sequence[str] = ()
) -> QueueFilter:
    """The queues a worker takes tasks from, checked against the backend's QUEUES."""
    declared = backend.queues
    named = [*(only or ()), *excluded]
    unknown = sorted(set(named) - declared) if declared else []
    if unknown:
        raise BackendMisconfigured(
            f"Queue(s) {', '.join(map(repr, unknown))} are not in TASKS[{backend.alias!r}]"
            f"['QUEUES'] ({', '.join(sorted(declared))})."
        )
    if only is not None:
        chosen = tuple(q for q in dict.fromkeys(only) if q not in excluded)
    elif excluded and declared:
        # Turn "all but these" into an explicit list: the claim index then gets
        # equality on the queue instead of a NOT IN scan.
        chosen = tuple(sorted(declared - set(excluded)))
    else:
        return QueueFilter(None, tuple(excluded)) if excluded else ALL_QUEUES
    if not chosen:
        raise BackendMisconfigured("Every queue is excluded: this worker would never run anything.")
    return QueueFilter(chosen)


def check_cpu_bound_queues(backend: DatabaseBackend, names: Sequence[str]) -> None:
    """Refuse CPU-bound queues that the backend's QUEUES does not declare."""
    declared = backend.queues
    unknown = sorted(set(names) - declared) if declared else []
    if unknown:
        raise BackendMisconfigured(
            f"CPU-bound queue(s) {', '.join(map(repr, unknown))} are not in "
            f"TASKS[{backend.alias!r}]['QUEUES'] ({', '.join(sorted(declared))})."
        )
