from offload.models import TaskRecord
from offload.worker import Worker, WorkerStats


def drain(**kwargs: object) -> WorkerStats:
    """Run an in-process worker until no task is due."""
    return Worker("default", **kwargs).run(burst=True)  # type: ignore[arg-type]


def row_count() -> int:
    return TaskRecord.objects.count()
