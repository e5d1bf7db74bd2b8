"""Storage: the only code that writes task state. See ``tasks`` for why it is SQL."""

from offload.store.tasks import ALL_QUEUES, ClaimedTask, Heartbeat, NewTask, QueueFilter, TaskStore

__all__ = ["ALL_QUEUES", "ClaimedTask", "Heartbeat", "NewTask", "QueueFilter", "TaskStore"]
