"""The worker: a supervisor, its task processes, and the loop each process runs."""

from offload.worker.loop import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
