"""The worker's task counts: counted in a process, carried as ``metrics`` lines,
added up by the supervisor and read back through prometheus_client."""

import sys
from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from offload.exceptions import MetricsUnavailable
from offload.worker.children import Child
from offload.worker.metrics_server import WorkerMetrics
from offload.worker.task_metrics import BUCKETS, Histogram, TaskMetrics
from offload.worker_options import resolve
from tests.unit.worker_parts import claimed


def test_a_value_on_a_bound_is_in_that_bucket_and_the_counts_are_cumulative():
    histogram = Histogram()
    for value in (0.005, 0.006, 7200.0):
        histogram.observe(value)
    pairs = histogram.cumulative()
    assert pairs[0] == ("0.005", 1.0)
    assert pairs[1] == ("0.01", 2.0)
    assert pairs[-2] == (str(BUCKETS[-1]), 2.0)
    assert pairs[-1] == ("+Inf", 3.0)
    assert histogram.total == pytest.approx(7200.011)


def test_a_process_sends_its_counts_once_and_the_supervisor_adds_them_up():
    metrics, board = TaskMetrics(), WorkerMetrics("default")
    emails = claimed(task_path="app.tasks.mail", queue_name="emails")
    late = replace(claimed(), available_at=claimed().available_at - timedelta(seconds=3))
    for task in (late, emails, late):
        metrics.started(task)
    metrics.settled(late, "succeeded", 0.2)
    metrics.settled(emails, "retried", 0.02)
    lines = metrics.lines()
    assert len(lines) == 2  # one per (queue, task)
    assert metrics.lines() == []  # sent once: they are deltas
    metrics.settled(late, "failed", 40.0)
    for line in [*lines, *metrics.lines()]:
        assert board.take(line)
    assert not board.take(b"metrics [not json")
    assert not board.take(b"stats 1 2 3 4 5 6")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(board)
    found = {
        (s.name, s.labels.get("queue"), s.labels.get("le")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert found[("offload_worker_tasks_started_total", "default", None)] == 2
    assert found[("offload_worker_tasks_succeeded_total", "default", None)] == 1
    assert found[("offload_worker_tasks_failed_total", "default", None)] == 1
    assert found[("offload_worker_tasks_retried_total", "emails", None)] == 1
    assert found[("offload_worker_task_run_seconds_count", "default", None)] == 2
    assert found[("offload_worker_task_run_seconds_bucket", "default", "0.25")] == 1
    assert found[("offload_worker_task_run_seconds_sum", "default", None)] == pytest.approx(40.2)
    # Waited about 3 seconds each, by the host's clock.
    assert found[("offload_worker_task_wait_seconds_bucket", "default", "2.5")] == 0
    assert found[("offload_worker_task_wait_seconds_bucket", "default", "5.0")] == 2
    assert found[("offload_worker_tasks_rescued_total", None, None)] == 0


def test_a_child_hands_its_metrics_lines_to_the_supervisor_and_keeps_its_figures():
    taken: list[bytes] = []
    child = Child(1, "w/p1", None, 0, 0, 0.0)  # type: ignore[arg-type]
    child.metrics = lambda line: taken.append(line) is None
    child.take(b'stats 1 0 0 0 0 0\nmetrics ["default","a",[1,1,0,0,0],[],0,[],0]\nsta')
    child.take(b"rt 7 1 3.5\n")
    assert taken == [b'metrics ["default","a",[1,1,0,0,0],[],0,[],0]']
    assert child.counts.succeeded == 1
    assert 7 in child.running


def test_the_port_without_prometheus_client_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MetricsUnavailable, match=r"pip install 'django-offload\[metrics\]'"):
        WorkerMetrics("default").serve("127.0.0.1", 9)


def test_the_metrics_port_is_a_worker_setting():
    chosen = resolve({"metrics_port": "9187"}, {}, lambda alias: {}, debug=False)
    assert (chosen.metrics_port, chosen.metrics_address) == (9187, "127.0.0.1")
    chosen = resolve(
        {}, {"OFFLOAD_METRICS_ADDRESS": "0.0.0.0"}, lambda alias: {"METRICS_PORT": 9100},
        debug=False,
    )  # fmt: skip
    assert (chosen.metrics_port, chosen.metrics_address) == (9100, "0.0.0.0")
    assert resolve({}, {}, lambda alias: {}, debug=False).metrics_port is None
    with pytest.raises(Exception, match="between 1 and 65535"):
        resolve({"metrics_port": "70000"}, {}, lambda alias: {}, debug=False)
