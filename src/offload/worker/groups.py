"""One supervisor, several backends: a group of task processes per TASKS alias.

``offload worker --backend a,b`` runs one group per alias under one
supervisor: each group has its own task processes (numbered after the previous
group's), queues, capacity and heartbeat file, and the threads of its backend
(the scheduler of its schedules; the rescuer, the depth sampler, the pruner
and the rate promoter of its database). The elected roles work on a database,
not on an alias (claims and leases are the database's), so two aliases on one
database run them once, from the first of the two groups.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from django.db import connections

from offload.backend import DatabaseBackend
from offload.store import QueueFilter
from offload.worker.config import WorkerConfig, check_cpu_bound_queues, get_backend, queue_filter
from offload.worker.heartbeat_file import HeartbeatFile
from offload.worker.pruner import Pruner
from offload.worker.rate_promoter import RatePromoter
from offload.worker.rescue import Rescuer
from offload.worker.sampler import DepthSampler
from offload.worker.wakeups import listen_plan
from offload.worker_options import WorkerSettings


class _Thread(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Group:
    """The task processes and threads that serve one backend alias."""

    settings: WorkerSettings
    first_slot: int
    backend: DatabaseBackend = field(init=False)
    queues: QueueFilter = field(init=False)
    config: WorkerConfig = field(init=False)
    heartbeat_file: HeartbeatFile = field(init=False)
    rescuer: Rescuer | None = field(init=False, default=None)
    _threads: list[_Thread] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        self.backend = get_backend(s.backend)
        self.queues = queue_filter(self.backend, s.queues, s.exclude_queues)
        check_cpu_bound_queues(self.backend, s.cpu_bound_queues)
        # What every task process of the group runs with (the supervisor adds
        # each process's own id and pipes).
        self.config = WorkerConfig(
            s.backend, queues=s.queues, exclude_queues=s.exclude_queues, threads=s.threads,
            cpu_bound_queues=s.cpu_bound_queues,
            async_concurrency=s.async_concurrency, max_tasks=s.max_tasks_per_child,
            max_memory=s.max_memory_per_child, shutdown_timeout=s.shutdown_timeout,
            log_sql=s.verbosity >= 3, supervisor_pid=os.getpid(),
            metrics=s.metrics_port is not None,
        )  # fmt: skip
        options = self.backend.config
        self.heartbeat_file = HeartbeatFile(options.heartbeat_file, options.heartbeat_seconds)

    @property
    def alias(self) -> str:
        return self.settings.backend

    @property
    def database(self) -> str:
        return self.backend.config.database

    @property
    def slots(self) -> range:
        return range(self.first_slot, self.first_slot + self.settings.processes)

    def start_threads(self, owner: str, *, elected_roles: bool) -> None:
        """Start the scheduler and, if ``elected_roles``, the database's roles."""
        options = self.backend.config
        if elected_roles:
            self.rescuer = Rescuer(self.database, options, owner)
            self._threads += [
                self.rescuer,
                DepthSampler(self.database, owner, self.backend.queues),
                Pruner(self.database, options, owner),
                RatePromoter(self.database, owner),
            ]
            for role in self._threads:
                role.start()
        if self.settings.scheduler:
            # Imported here: the scheduler is optional and loads the schedule models.
            from offload.schedules.thread import start_scheduler

            self._threads.append(start_scheduler(self.backend, owner))

    def stop_threads(self) -> None:
        for thread in self._threads:
            thread.stop()
        self._threads.clear()
        self.heartbeat_file.remove()

    def rescued(self) -> int:
        return self.rescuer.rescued if self.rescuer is not None else 0

    def banner_lines(self, database: str) -> list[str]:
        s = self.settings
        if self.queues.only is not None:
            queues = ", ".join(self.queues.only)
        else:
            queues = "all" + (
                f" except {', '.join(self.queues.excluded)}" if self.queues.excluded else ""
            )
        options = self.backend.config
        plan = listen_plan(options)
        listens = connections[options.database].vendor == "postgresql" and plan.enabled
        wakeups = (
            "LISTEN/NOTIFY" + (f" on {plan.alias}" if plan.alias else "") if listens else
            f"polling, every {options.poll_interval:g}s at most when idle"
        )  # fmt: skip
        return [
            f"  backend   {s.backend} -> {database}",
            f"  queues    {queues}",
            *([f"  cpu-bound {', '.join(s.cpu_bound_queues)}: one task at a time per process"]
              if s.cpu_bound_queues else []),
            f"  capacity  {s.processes} process{'es' if s.processes != 1 else ''} x "
            f"{s.threads} thread{'s' if s.threads != 1 else ''}, "
            f"up to {s.async_concurrency} async tasks per process",
            f"  wake-ups  {wakeups}",
        ]  # fmt: skip


def build_groups(chosen: Sequence[WorkerSettings]) -> list[Group]:
    """One group per alias, their process slots numbered one after the other."""
    groups: list[Group] = []
    slot = 1
    for settings in chosen:
        groups.append(Group(settings, slot))
        slot += settings.processes
    return groups


def start_all(groups: Sequence[Group], owner: str) -> None:
    """Start each group's threads; the elected roles once per database."""
    seen: set[str] = set()
    for group in groups:
        group.start_threads(owner, elected_roles=group.database not in seen)
        seen.add(group.database)
