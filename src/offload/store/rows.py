"""The rows the store reads and writes, as Python values."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from offload.concurrency import LimitOf
from offload.payload import decode
from offload.rates import RateOf
from offload.store.base import required
from offload.store.vendor import read_datetime
from offload.uniqueness import UniqueKeyOf

# What a worker needs to run a claimed task and rebuild its TaskResult.
CLAIMED_COLUMNS = (
    "id, task_path, backend, queue_name, priority, run_after, available_at, enqueued_at, "
    "started_at, last_attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, "
    "max_attempts, timeout, trace_context, concurrency_key, has_dependents, upstream_results"
)


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task this worker holds a lease on, as of the claim."""

    id: int
    task_path: str
    backend: str
    queue_name: str
    priority: int
    run_after: datetime | None
    available_at: datetime
    enqueued_at: datetime
    # When the code of the first and of the latest earlier attempt began (None:
    # no attempt began yet); the claim does not change them.
    started_at: datetime | None
    last_attempted_at: datetime | None
    attempt: int
    worker_ids: list[str]
    errors: list[dict[str, Any]]
    args: list[Any]
    kwargs: dict[str, Any]
    is_async: bool = False
    max_attempts: int = 1
    timeout: float | None = None
    # The enqueue's trace context (see offload.tracing); None: not traced.
    trace_context: dict[str, str] | None = None
    # Why the row cannot run (its stored JSON is unreadable), or None.
    problem: str | None = None
    # The task's concurrency key (see store.gate), or None: a final outcome
    # of a keyed task promotes the key's blocked tasks.
    concurrency_key: str | None = None
    # Whether a final state of the task settles tasks of a workflow waiting
    # on it (see store.dependencies): known from the claim, so a task outside
    # a workflow costs its outcome no statement.
    has_dependents: bool = False
    # How the results of its upstream tasks reach its code (see
    # offload.workflows): None for a task outside a workflow.
    upstream_results: str | None = None
    # Those results, read after the claim (see ``ClaimStore.claim``): what
    # the code receives first, ahead of its own arguments.
    upstream: tuple[Any, ...] = ()

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "ClaimedTask":
        (id_, path, backend, queue, priority, run_after, available_at, enqueued_at, started_at,
         attempted_at, attempt, worker_ids, errors, args, kwargs, is_async, max_attempts,
         timeout, trace_context, concurrency_key, has_dependents,
         upstream_results) = row  # fmt: skip
        # A row whose JSON does not decode (written by hand, or by another tool)
        # must fail on its own, not break the claim of the tasks around it.
        problem = None
        try:
            decoded = [decode(worker_ids), decode(errors), decode(args), decode(kwargs)]
        except (TypeError, ValueError) as exc:
            problem = f"Stored JSON of task {id_} is unreadable: {exc}"
            decoded = [[], [], [], {}]
        if not isinstance(decoded[0], list) or not isinstance(decoded[1], list):
            decoded[0:2] = [[], []]
        if not problem and (not isinstance(decoded[2], list) or not isinstance(decoded[3], dict)):
            problem = f"Stored arguments of task {id_} are not a list and a dict."
            decoded[2:4] = [[], {}]
        return cls(
            id=int(id_),
            task_path=path,
            backend=backend,
            queue_name=queue,
            priority=int(priority),
            run_after=read_datetime(run_after),
            available_at=required(read_datetime(available_at)),
            enqueued_at=required(read_datetime(enqueued_at)),
            started_at=read_datetime(started_at),
            last_attempted_at=read_datetime(attempted_at),
            attempt=int(attempt),
            worker_ids=decoded[0],
            errors=decoded[1],
            args=decoded[2],
            kwargs=decoded[3],
            is_async=bool(is_async),
            max_attempts=int(max_attempts),
            timeout=None if timeout is None else float(timeout),
            trace_context=None if trace_context is None else _carrier(trace_context),
            problem=problem,
            concurrency_key=None if concurrency_key is None else str(concurrency_key),
            has_dependents=bool(has_dependents),
            upstream_results=None if upstream_results is None else str(upstream_results),
        )

    @property
    def keys(self) -> list[tuple[str, str]]:
        """The concurrency key of the task as (backend, key), or none."""
        return [] if self.concurrency_key is None else [(self.backend, self.concurrency_key)]

    @property
    def dependents(self) -> list[int]:
        """The task's id if workflow tasks wait on it (see store.dependencies), or none."""
        return [self.id] if self.has_dependents else []

    @property
    def claim_order(self) -> tuple[int, datetime, int]:
        return (-self.priority, self.available_at, self.id)


def _carrier(stored: Any) -> dict[str, str] | None:
    """A stored trace context, or None where it is not one: a row's trace is
    worth less than its run, so a bad one is dropped, never failed."""
    try:
        carrier = decode(stored)
    except (TypeError, ValueError):
        return None
    if not isinstance(carrier, dict):
        return None
    return {str(key): str(value) for key, value in carrier.items()}


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a heartbeat found: the tasks the worker holds, by the database."""

    held: dict[int, int]  # task id -> attempt, every RUNNING row leased to the worker
    cancels: list[int]  # the ids among them whose cancellation was requested


@dataclass(frozen=True, slots=True)
class NewTask:
    """A row to insert; arguments already validated and encoded as JSON."""

    task_path: str
    backend: str
    queue_name: str
    priority: int
    run_after: datetime | None
    args_json: str
    kwargs_json: str
    is_async: bool = False
    max_attempts: int = 1
    timeout: float | None = None
    # The enqueue's trace context as JSON (see offload.tracing); None: not traced.
    trace_context: str | None = None
    # The unique key the task takes (see store.unique), or None.
    unique: UniqueKeyOf | None = None
    # The concurrency key and limit of the task (see store.gate), or None.
    limit: LimitOf | None = None
    # The rate key and rate of the task (see store.rate_gate), or None.
    rate: RateOf | None = None


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which queues a worker takes tasks from: ``only`` these (None: all), minus ``excluded``."""

    only: tuple[str, ...] | None = None
    excluded: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.only is not None and not self.only

    def allows(self, queue: str) -> bool:
        return (self.only is None or queue in self.only) and queue not in self.excluded

    def sql(self) -> tuple[str, list[str]]:
        """An ``AND ...`` clause on queue_name, and its parameters."""
        # An explicit list leaves the exclusions already applied by the caller
        # (see ``worker.config``), so the claim index gets equality on the queue.
        if self.only is not None:
            if len(self.only) == 1:
                return " AND queue_name = %s", [self.only[0]]
            return f" AND queue_name IN ({', '.join(['%s'] * len(self.only))})", list(self.only)
        if self.excluded:
            marks = ", ".join(["%s"] * len(self.excluded))
            return f" AND queue_name NOT IN ({marks})", list(self.excluded)
        return "", []


ALL_QUEUES = QueueFilter()
