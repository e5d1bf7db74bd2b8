"""Workflows run by real worker processes: a chain of ten passes every result
along, and a group of 1,000 fires its callback exactly once while the
worker's task processes are SIGKILLed during the run (the fault suite)."""

import os
import random
import signal
import time

from django.db import connection

from offload.models import TaskRecord, WorkerRecord
from offload.states import State
from offload.workflows import call, chain, group
from tests.acceptance.processes import children_of
from tests.app import tasks
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker")
# Short leases so a killed process's tasks are rescued within seconds, and
# room for every retry a kill costs.
QUICK = {
    "LEASE_SECONDS": 2,
    "HEARTBEAT_SECONDS": 0.5,
    "RETRY": {"MAX_ATTEMPTS": 100, "DELAY": 0.05, "MAX_DELAY": 0.5},
}
MEMBERS = 1000
KILLS = 4


def _count(**filters: object) -> int:
    return TaskRecord.objects.filter(**filters).count()


def test_a_chain_of_ten_passes_every_result_along_in_a_real_worker(start_process):
    flow = chain(call(tasks.add_to, 0, 1), *[call(tasks.add_to, 1) for _ in range(9)]).enqueue()
    proc = start_process(*WORKER, "--processes", "2", "--threads", "2", "-v", "0")
    last = int(flow.results[-1].id)
    wait_for(lambda: _count(pk=last, status=State.SUCCESSFUL) == 1, timeout=60)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    values = dict(TaskRecord.objects.values_list("pk", "return_value"))
    assert [values[int(r.id)] for r in flow.results] == list(range(1, 11))


def test_a_group_of_a_thousand_fires_its_callback_once_through_sigkills(start_process, tmp_path):
    ledger = tmp_path / "ledger.txt"
    members = [call(tasks.ledger_member, str(ledger), n, 0.01) for n in range(MEMBERS)]
    flow = group(members).then(call(tasks.ledger_callback, str(ledger))).enqueue()
    callback = int(flow.results[-1].id)
    proc = start_process(
        *WORKER, "--processes", "2", "--threads", "4", "-v", "0", options=QUICK
    )  # fmt: skip
    rng = random.Random(11)
    kills = 0
    # Kill only while members run: the callback itself is at least once like
    # any task, and killing it would test that instead.
    while kills < KILLS and _count(status=State.SUCCESSFUL) < MEMBERS * 0.8:
        time.sleep(rng.uniform(0.3, 0.7))
        busy = {w.pid for w in WorkerRecord.objects.all()} & set(children_of(proc.pid))
        if busy:
            os.kill(rng.choice(sorted(busy)), signal.SIGKILL)
            kills += 1
    wait_for(lambda: _count(pk=callback, status=State.SUCCESSFUL) == 1, timeout=180)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    lines = ledger.read_text().splitlines()
    callbacks = [line for line in lines if line.startswith("callback ")]
    members_run = {int(line.split()[1]) for line in lines if line.startswith("member ")}
    print(
        f"\n[{connection.vendor}] group of {MEMBERS}: {kills} SIGKILLs, "
        f"{len(lines) - len(callbacks)} member runs, {len(callbacks)} callback run"
    )
    assert kills == KILLS
    assert members_run == set(range(MEMBERS))
    # Exactly once, with every member's result in order.
    assert callbacks == [f"callback {MEMBERS} {sum(range(MEMBERS))} {callbacks[0].split()[3]}"]
    assert _count(status=State.SUCCESSFUL) == MEMBERS + 1
    assert TaskRecord.objects.get(pk=callback).return_value == sum(range(MEMBERS))
