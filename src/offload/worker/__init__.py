"""The worker: a supervisor, its task processes, and the loop each process runs."""

from offload.worker.config import WorkerConfig
from offload.worker.loop import Worker, WorkerStats

__all__ = ["Worker", "WorkerConfig", "WorkerStats"]
