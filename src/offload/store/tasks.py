"""``TaskStore``: every statement that writes task state, on one database alias.

The store is split by table (see ``base`` for why it is raw SQL): ``enqueue``
(``unique`` for a task with a unique key) and ``outcomes`` write the task
table, ``claim`` takes tasks, ``rescue`` ends lost attempts, ``workers``
keeps the worker and lease tables, ``announce`` wakes the workers when tasks
become READY. ``TaskStore`` is all of them on one connection, so callers hold
one object.
"""

from offload.store.announce import NOTIFY_CHANNEL
from offload.store.base import LEASE_TABLE, TABLE, WORKER_TABLE
from offload.store.claim import ASYNC_CLAIM_INDEX, CLAIM_ROUNDS, ClaimStore
from offload.store.outcomes import OutcomeStore
from offload.store.rescue import RescueStore
from offload.store.rows import ALL_QUEUES, ClaimedTask, Heartbeat, NewTask, QueueFilter
from offload.store.unique import Holder, UniqueStore
from offload.store.workers import WorkerStore

__all__ = [
    "ALL_QUEUES",
    "ASYNC_CLAIM_INDEX",
    "CLAIM_ROUNDS",
    "LEASE_TABLE",
    "NOTIFY_CHANNEL",
    "TABLE",
    "WORKER_TABLE",
    "ClaimedTask",
    "Heartbeat",
    "Holder",
    "NewTask",
    "QueueFilter",
    "TaskStore",
]


class TaskStore(UniqueStore, ClaimStore, OutcomeStore, RescueStore, WorkerStore):
    """The task, worker and lease tables on one database alias.

    By default it uses Django's shared connection for the alias (so an enqueue
    joins the caller's transaction); a worker passes its private connection.
    """
