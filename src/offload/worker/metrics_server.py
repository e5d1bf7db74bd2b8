"""The supervisor's metrics port (``offload worker --metrics-port``): the task
processes' counts, added up, served by ``prometheus_client``'s own HTTP server.

The counts come from the processes as ``metrics`` lines (see
``worker.task_metrics`` for why that way); the supervisor's loop adds them to
one ``Tally`` under a lock that only the loop and a scrape take, never a task.
A scrape turns the totals into metric families: ``prometheus_client`` writes
the exposition format. Off unless asked for; ``prometheus_client`` is only
imported then (the ``metrics`` extra).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from offload.exceptions import MetricsUnavailable
from offload.worker.task_metrics import COUNTERS, Histogram, Tally

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

INSTALL_HINT = "--metrics-port needs prometheus_client: pip install 'django-offload[metrics]'."
LABELS = ["backend", "queue", "task"]
COUNTER_DOCS = {
    "started": "Attempts whose code began, by the worker's task processes.",
    "succeeded": "Attempts that ended SUCCESSFUL.",
    "failed": "Attempts that ended FAILED (no attempt left, or an error not retried).",
    "retried": "Attempts that failed and will be tried again.",
    "cancelled": "Attempts that stopped on a cancel request.",
}


class WorkerMetrics:
    """The totals of one supervisor's task processes, as a prometheus_client
    collector: one tally per backend alias it serves (``--backend a,b``), each
    family holding the samples of every alias under its ``backend`` label."""

    def __init__(self, *backends: str) -> None:
        self.backend = backends[0]
        self._tallies = {alias: Tally() for alias in backends}
        self._lock = threading.Lock()
        # Tasks the rescuer of an alias's group sent back (set once it runs).
        self.rescued: Callable[[str], int] = lambda alias: 0
        self._server: Any = None

    def take(self, line: bytes, backend: str | None = None) -> bool:
        """Add a process's ``metrics`` line (from the supervisor's loop)."""
        with self._lock:
            return self._tallies[backend or self.backend].take(line)

    def taker(self, backend: str) -> Callable[[bytes], bool]:
        """``take`` for the processes of ``backend``."""
        return lambda line: self.take(line, backend)

    def _snapshot(
        self,
    ) -> list[tuple[tuple[str, str, str], dict[str, int], Histogram, Histogram]]:
        with self._lock:
            return [
                ((alias, *key), dict(e.counts), Histogram(list(e.run.counts), e.run.total),
                 Histogram(list(e.wait.counts), e.wait.total))
                for alias, tally in self._tallies.items()
                for key, e in tally.entries.items()
            ]  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        entries = self._snapshot()
        for name in COUNTERS:
            family = CounterMetricFamily(
                f"offload_worker_tasks_{name}", COUNTER_DOCS[name], labels=LABELS
            )
            for labels, counts, _run, _wait in entries:
                family.add_metric(list(labels), float(counts[name]))
            yield family
        run = HistogramMetricFamily(
            "offload_worker_task_run_seconds",
            "How long attempts ran, from their code's start to their end.",
            labels=LABELS,
        )
        wait = HistogramMetricFamily(
            "offload_worker_task_wait_seconds",
            "How long attempts waited from when they were due until their code began.",
            labels=LABELS,
        )
        for labels, _counts, ran, waited in entries:
            run.add_metric(list(labels), ran.cumulative(), ran.total)
            wait.add_metric(list(labels), waited.cumulative(), waited.total)
        yield run
        yield wait
        rescued = CounterMetricFamily(
            "offload_worker_tasks_rescued",
            "Tasks whose lease expired that this worker's rescuer sent back (or failed).",
            labels=["backend"],
        )
        for alias in self._tallies:
            rescued.add_metric([alias], float(self.rescued(alias)))
        yield rescued

    def serve(self, address: str, port: int) -> None:
        """Start prometheus_client's HTTP server on ``address:port`` with these
        metrics alone; a clear error if the extra is missing or the port taken."""
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise MetricsUnavailable(INSTALL_HINT) from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        try:
            self._server, _thread = start_http_server(port, addr=address, registry=registry)
        except OSError as exc:
            raise MetricsUnavailable(
                f"--metrics-port {port}: cannot listen on {address}:{port} ({exc.strerror or exc})."
            ) from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
