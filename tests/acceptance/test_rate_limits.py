"""A rate limit held by a real worker: 300 tasks of one key with a rate of
20/s, enqueued at once, run by 2 processes of 8 threads; a ledger the tasks
write (each start's time on the host's monotonic clock) never shows more than
20 starts in any second, beyond the documented precision, and the rate
reached stays close to 20/s. About 15 s of running (the issue's 30 s run is
the same test with TASKS = 600)."""

import bisect
import signal
from pathlib import Path

from django.db import connection, transaction

import offload
from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker")
TASKS = 300
COUNT, PERIOD = 20, 1.0  # tasks.rate_ledgered's rate
# The documented precision (docs/coordination.md "Rate limits"): the limit
# holds for claims, by the database's clock; a start in Python comes after
# its claim by the worker's hand-off, which varies by milliseconds, so a
# window measured on starts may hold a start or two more.
SLACK = 2


def read_starts(path: Path) -> list[tuple[int, float]]:
    lines = path.read_text().splitlines()
    return [(int(index), float(at)) for _, index, at, _pid in map(str.split, lines)]


def most_in_a_window(times: list[float], period: float) -> int:
    """The most starts in any window of ``period`` seconds (each window
    begins at a start: the fullest one does)."""
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, at + period) - index for index, at in enumerate(ordered))


def test_a_rate_of_twenty_per_second_holds_across_a_real_worker(start_process, tmp_path):
    ledger = tmp_path / "ledger.txt"
    with transaction.atomic():
        offload.enqueue_many(tasks.rate_ledgered, [([str(ledger), i], {}) for i in range(TASKS)])
    assert TaskRecord.objects.filter(status=State.BLOCKED).count() == TASKS - COUNT
    proc = start_process(*WORKER, "--processes", "2", "--threads", "8", "-v", "0")
    others = [tasks.add.enqueue(i, i) for i in range(20)]
    wait_for(
        lambda: TaskRecord.objects.filter(status=State.SUCCESSFUL).count() == TASKS + 20,
        timeout=120,
        what="every task to succeed",
    )
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output

    starts = read_starts(ledger)
    assert sorted(index for index, _ in starts) == list(range(TASKS))  # each ran, once
    times = [at for _, at in starts]
    most = most_in_a_window(times, PERIOD)
    span = max(times) - min(times)
    rate = (TASKS - 1) / span
    # By the database's clock, on the claims: never more than COUNT.
    claims = sorted(
        at.timestamp()
        for at in TaskRecord.objects.filter(rate_key="ledger-rate").values_list(
            "claimed_at", flat=True
        )
    )
    most_claims = most_in_a_window(claims, PERIOD)
    print(
        f"\n[{connection.vendor}] {TASKS} tasks at {COUNT}/s on 2x8: {span:.1f}s, "
        f"{rate:.1f} starts/s, at most {most} starts and {most_claims} claims in a second"
    )
    assert most_claims <= COUNT
    assert most <= COUNT + SLACK
    assert rate >= 15
    assert int(others[-1].id)  # the tasks without a key ran alongside
