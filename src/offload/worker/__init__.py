"""The worker: claims tasks from the store and runs them."""

from offload.worker.loop import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
