"""Storage: the only code that writes task state. See ``tasks`` for why it is SQL."""

from offload.store.tasks import ClaimedTask, NewTask, TaskStore

__all__ = ["ClaimedTask", "NewTask", "TaskStore"]
