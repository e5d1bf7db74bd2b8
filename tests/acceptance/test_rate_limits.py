"""A rate limit held by a real worker: 300 tasks of one key with a rate of
20/s, enqueued at once, run by 2 processes of 8 threads; a ledger the tasks
write (each start's time on the host's monotonic clock) never shows more than
20 starts in any second less the documented precision (and the claims, by the
database's clock, never more than 20 in any second), and the rate reached
stays close to 20/s. About 15 s of running (the issue's 30 s run is the
same test with OFFLOAD_RATE_TASKS=620)."""

import bisect
import os
import signal
from pathlib import Path

from django.db import connection, transaction

import offload
from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker")
# 300 by default (about 15 s); OFFLOAD_RATE_TASKS=620 for the 30 s run.
TASKS = int(os.environ.get("OFFLOAD_RATE_TASKS", "300"))
COUNT, PERIOD = 20, 1.0  # tasks.rate_ledgered's rate
# The documented precision (docs/coordination.md "Rate limits"): the limit
# holds exactly for claims, by the database's clock; a start in Python comes
# after its claim by the worker's hand-off, which varies from task to task
# (tens of milliseconds, more on a loaded host), so on starts it holds for
# any window of the period less that variation, as this run measures it.
# The variation must stay well under the period for that to say anything.
MOST_JITTER = 0.5


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
    # The claims, by the database's clock (one attempt each: the last claim is the only one).
    claimed = {
        int(args[1]): at.timestamp()
        for args, at in TaskRecord.objects.filter(rate_key="ledger-rate").values_list(
            "args", "claimed_at"
        )
    }
    most_claims = most_in_a_window(list(claimed.values()), PERIOD)
    # Each start's hand-off after its claim, up to a constant (two clocks).
    lags = [at - claimed[index] for index, at in starts]
    jitter = max(lags) - min(lags)
    most = most_in_a_window(times, PERIOD)
    # 1 ms less again: the two clocks' readings are rounded to microseconds.
    within = PERIOD - jitter - 0.001
    most_within = most_in_a_window(times, within)
    span = max(times) - min(times)
    # The first COUNT start at once; the rest come at the rate.
    rate = (TASKS - COUNT) / span
    print(
        f"\n[{connection.vendor}] {TASKS} tasks at {COUNT}/s on 2x8: {span:.1f}s, "
        f"{rate:.1f} starts/s after the first {COUNT}; in any second at most {most_claims} "
        f"claims; at most {most} starts in any {PERIOD:g} s and {most_within} in any "
        f"{within:.3f} s; hand-off jitter {jitter * 1000:.0f} ms"
    )
    assert most_claims <= COUNT
    assert jitter < MOST_JITTER
    assert most_within <= COUNT
    assert rate >= 15
    assert rate <= COUNT * 1.05
    assert int(others[-1].id)  # the tasks without a key ran alongside
