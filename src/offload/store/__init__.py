"""Storage: the only code that writes task state. See ``base`` for why it is SQL."""

from offload.store.rows import ALL_QUEUES, ClaimedTask, Heartbeat, NewTask, QueueFilter
from offload.store.tasks import TaskStore
from offload.store.unique import Holder

__all__ = [
    "ALL_QUEUES",
    "ClaimedTask",
    "Heartbeat",
    "Holder",
    "NewTask",
    "QueueFilter",
    "TaskStore",
]
