"""A concurrency limit held by real worker processes: 4 processes of 8 threads
run 60 tasks of one key with a limit of 2, and a ledger the tasks write never
shows more than 2 running at once."""

import signal
import time
from pathlib import Path

from django.db import connection, transaction

from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker")
KEYED = 60
LIMIT = 2  # tasks.ledgered's concurrency_limit
SECONDS = 0.1  # each keyed task's run


def read_ledger(path: Path) -> list[tuple[str, int, float]]:
    """The ledger's lines in the order they were appended: (what, index, time)."""
    lines = path.read_text().splitlines()
    return [(what, int(index), float(at)) for what, index, at, _pid in map(str.split, lines)]


def most_at_once(ledger: list[tuple[str, int, float]]) -> int:
    """The most tasks between their start and end lines at any point of the
    ledger. Each task runs inside its two lines, and the lines are in the
    order they were written, so this is at least the true overlap."""
    running, most = 0, 0
    for what, _, _ in ledger:
        running += 1 if what == "start" else -1
        most = max(most, running)
    return most


def test_a_limit_of_two_holds_across_four_processes_of_eight_threads(start_process, tmp_path):
    ledger_path = tmp_path / "ledger.txt"
    with transaction.atomic():
        keyed = [tasks.ledgered.enqueue(str(ledger_path), i, SECONDS) for i in range(KEYED)]
    assert TaskRecord.objects.filter(status=State.BLOCKED).count() == KEYED - LIMIT
    begun = time.monotonic()
    proc = start_process(*WORKER, "--processes", "4", "--threads", "8", "-v", "0")
    # Tasks without a key, enqueued behind the blocked ones, run meanwhile.
    others = [tasks.add.enqueue(i, i) for i in range(20)]
    wait_for(
        lambda: TaskRecord.objects.filter(status=State.SUCCESSFUL).count() == KEYED + 20,
        timeout=180,
        what="every task to succeed",
    )
    elapsed = time.monotonic() - begun
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output

    ledger = read_ledger(ledger_path)
    starts = sorted(index for what, index, _ in ledger if what == "start")
    assert starts == list(range(KEYED))  # each ran, once
    most = most_at_once(ledger)
    print(f"\n[{connection.vendor}] {KEYED} tasks limited to {LIMIT} on 4x8: "
          f"{elapsed:.1f}s, at most {most} at once")  # fmt: skip
    assert most == LIMIT
    # By the clock too: no instant is inside more than LIMIT (start, end) spans.
    spans = {}
    for what, index, at in ledger:
        spans.setdefault(index, {})[what] = at
    for index, span in spans.items():
        inside = [other for other, s in spans.items() if s["start"] <= span["start"] < s["end"]]
        assert len(inside) <= LIMIT, (index, inside)
    # The tasks without a key did not wait for the blocked ones.
    last_other = max(
        TaskRecord.objects.filter(pk__in=[int(r.id) for r in others]).values_list(
            "finished_at", flat=True
        )
    )
    last_keyed = max(
        TaskRecord.objects.filter(pk__in=[int(r.id) for r in keyed]).values_list(
            "finished_at", flat=True
        )
    )
    assert last_other < last_keyed
