"""``offload worker --metrics-port``: a real worker of two processes runs tasks
that succeed, fail and are retried; the supervisor's port serves their counts
added up, read with prometheus_client's own parser."""

import signal
import socket
import urllib.request
from collections import defaultdict

from django.db import transaction
from prometheus_client.parser import text_string_to_metric_families

from offload.models import TaskRecord, WorkerRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker", "--processes", "2", "--threads", "2", "-v", "0")
SLOW, EMAILS, RETRIED, NOT_RETRIED = 40, 6, 4, 3
# fails_with("key") has 3 attempts, each retried but the last; "value" is never retried.
ATTEMPTS = {"retried": 2 * RETRIED, "failed": RETRIED + NOT_RETRIED, "succeeded": SLOW + EMAILS}
STARTED = SLOW + EMAILS + 3 * RETRIED + NOT_RETRIED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample on the port: sample name -> labels -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return found


def answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def total(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **only: str
) -> float:
    return sum(
        value
        for labels, value in samples.get(name, {}).items()
        if all(dict(labels).get(k) == v for k, v in only.items())
    )


def enqueue_all() -> None:
    with transaction.atomic():
        for i in range(SLOW):
            tasks.sleep_then_return.enqueue(0.1, i)
        for i in range(EMAILS):
            tasks.send_email.enqueue(f"user{i}@example.com")
        for _ in range(RETRIED):
            tasks.fails_with.enqueue("key")
        for _ in range(NOT_RETRIED):
            tasks.fails_with.enqueue("value")


def test_the_port_adds_up_the_counts_of_both_processes(start_process):
    port = free_port()
    worker = start_process(*WORKER, "--metrics-port", str(port))
    wait_for(lambda: answers(port), what="the metrics port")
    # Both processes are up before the tasks come, so that both take some.
    wait_for(lambda: WorkerRecord.objects.count() == 2, what="both task processes")
    enqueue_all()
    ended = [State.SUCCESSFUL, State.FAILED]
    wait_for(
        lambda: not TaskRecord.objects.exclude(status__in=ended).exists(),
        timeout=60,
        what="every task to finish",
    )

    # Counts arrive with each process's next report (a quarter of a second),
    # each process's on its own: a retry's count may come after the start of
    # the next attempt in the other process, so every count is waited for.
    def counted() -> bool:
        found = scrape(port)
        return total(found, "offload_worker_tasks_started_total") == STARTED and all(
            total(found, f"offload_worker_tasks_{outcome}_total") == expected
            for outcome, expected in ATTEMPTS.items()
        )

    wait_for(counted, what=f"{STARTED} starts and every outcome on the port")
    samples = scrape(port)
    # Both processes ran tasks: the totals are the sum of their counts.
    owners = {
        w.rsplit("/", 1)[-1]
        for ids in TaskRecord.objects.values_list("worker_ids", flat=True)
        for w in ids
    }
    assert {"p1", "p2"} <= owners, owners
    for outcome, expected in ATTEMPTS.items():
        assert total(samples, f"offload_worker_tasks_{outcome}_total") == expected, outcome
    assert total(samples, "offload_worker_tasks_cancelled_total") == 0
    assert total(samples, "offload_worker_tasks_succeeded_total", queue="emails") == EMAILS
    assert (
        total(samples, "offload_worker_tasks_retried_total", task="tests.app.tasks.fails_with")
        == 2 * RETRIED
    )
    assert (
        total(samples, "offload_worker_tasks_failed_total", task="tests.app.tasks.fails_with") == 7
    )
    for histogram in ("offload_worker_task_run_seconds", "offload_worker_task_wait_seconds"):
        assert total(samples, f"{histogram}_count") == STARTED, histogram
        assert total(samples, f"{histogram}_bucket", le="+Inf") == STARTED, histogram
    slow = {"task": "tests.app.tasks.sleep_then_return"}
    assert total(samples, "offload_worker_task_run_seconds_bucket", le="0.025", **slow) == 0
    assert total(samples, "offload_worker_task_run_seconds_sum", **slow) >= 0.1 * SLOW
    assert total(samples, "offload_worker_tasks_rescued_total") == 0

    # A second worker cannot have the same port: it says so and stops.
    second = start_process(*WORKER, "--metrics-port", str(port))
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 1, output
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}" in output

    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert not answers(port)
