"""Prometheus metrics of offload's backends, read from the database at scrape time.

The figures are those of ``offload status`` (``operations.status.collect``):
the same bounded reads, so a scrape every few seconds stays cheap with a
million rows in the table, and the two never disagree. Each scrape builds its
own registry: no state is kept between scrapes and nothing runs at import.

``prometheus_client`` is an optional dependency (``django-offload[metrics]``):
it writes the exposition format, which is never written by hand here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from offload.backend import DatabaseBackend
from offload.operations.status import collect

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

INSTALL_HINT = "offload's metrics need prometheus_client: pip install 'django-offload[metrics]'."

QUEUE_GAUGES = (
    ("ready", "offload_queue_ready_tasks", "Tasks waiting in the queue (READY), due or not."),
    ("due", "offload_queue_due_tasks", "READY tasks whose time has come."),
    ("running", "offload_queue_running_tasks", "Tasks of the queue running now."),
    (
        "blocked",
        "offload_queue_blocked_tasks",
        "Tasks of the queue waiting on a concurrency limit (BLOCKED).",
    ),
    (
        "waiting",
        "offload_queue_waiting_tasks",
        "Tasks of the queue waiting on upstream tasks of a workflow (WAITING).",
    ),
    (
        "oldest_due_age_seconds",
        "offload_queue_oldest_due_age_seconds",
        "How long the oldest due task has been due (0 when none is).",
    ),
)


class StatusCollector:
    """A ``prometheus_client`` collector of the status of some backends: each
    family once, with a sample per backend under its ``backend`` label (a
    family repeated per backend would be refused by Prometheus's parser)."""

    def __init__(self, backends: Sequence[DatabaseBackend]) -> None:
        self.backends = list(backends)

    def collect(self) -> Iterator[Metric]:
        statuses = [collect(backend) for backend in self.backends]
        yield from self._queues(statuses)
        yield from self._workers_and_failures(statuses)
        yield from self._schedules(statuses)

    def _queues(self, statuses: list[dict[str, Any]]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        for key, name, doc in QUEUE_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["backend", "queue"])
            for status in statuses:
                for queue in status["queues"]:
                    gauge.add_metric([status["backend"], queue["name"]], float(queue[key] or 0))
            yield gauge
        paused = GaugeMetricFamily(
            "offload_queue_paused", "1 while the queue is paused.", labels=["backend", "queue"]
        )
        for status in statuses:
            for queue in status["queues"]:
                paused.add_metric(
                    [status["backend"], queue["name"]], 1.0 if queue["paused"] else 0.0
                )
        yield paused

    def _workers_and_failures(self, statuses: list[dict[str, Any]]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        processes = GaugeMetricFamily(
            "offload_worker_processes",
            "Worker task processes by heartbeat: live, or stale (past the lease).",
            labels=["backend", "state"],
        )
        failed = GaugeMetricFamily(
            "offload_failed_tasks_recent",
            "Tasks that ended FAILED within the window (counted up to ADMIN_COUNT_LIMIT).",
            labels=["backend", "window_seconds"],
        )
        for status in statuses:
            alias, failures = status["backend"], status["failures"]
            processes.add_metric([alias, "live"], float(status["live_processes"]))
            processes.add_metric([alias, "stale"], float(status["stale_processes"]))
            failed.add_metric([alias, str(failures["window_seconds"])], float(failures["count"]))
        yield processes
        yield failed

    def _schedules(self, statuses: list[dict[str, Any]]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        next_fire = GaugeMetricFamily(
            "offload_schedule_next_fire_seconds",
            "Seconds until the schedule's next tick (negative: overdue).",
            labels=["backend", "schedule"],
        )
        broken = GaugeMetricFamily(
            "offload_schedule_error",
            "1 while the schedule is held by an error in its definition.",
            labels=["backend", "schedule"],
        )
        for status in statuses:
            alias = status["backend"]
            for schedule in status["schedules"]:
                if schedule["next_fire_in_seconds"] is not None:
                    next_fire.add_metric(
                        [alias, schedule["name"]], schedule["next_fire_in_seconds"]
                    )
                broken.add_metric([alias, schedule["name"]], 1.0 if schedule["last_error"] else 0.0)
        yield next_fire
        yield broken


def exposition(backends: Sequence[DatabaseBackend]) -> tuple[bytes, str]:
    """The scrape's body and content type, for ``backends``."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(backends))
    return generate_latest(registry), CONTENT_TYPE_LATEST
