"""Workers on separate hosts sharing one database: network namespaces made by
the test (see ``hosts``), each reaching the server over a link of its own,
with its own temporary directory and, for one of them, a clock ten minutes off.

PostgreSQL and MariaDB only: SQLite is one host's file.
"""

import os
import signal
import statistics
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.tasks import TaskResultStatus

from offload.models import Schedule, ScheduleFire, TaskRecord, WorkerRecord
from offload.states import State
from offload.store.base import database_now
from tests.acceptance import hosts
from tests.app import tasks
from tests.app.models import Run
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite is one host's file"),
    pytest.mark.skipif(
        hosts.missing() is not None and not os.environ.get("CI"),
        reason=f"no separate hosts here: {hosts.missing()}",
    ),
]

WORKER = ("-m", "django", "offload", "worker", "--processes", "1", "--threads", "2")
QUICK = {"LEASE_SECONDS": 2, "HEARTBEAT_SECONDS": 0.5, "RETRY": {"DELAY": 0.05}}
SKEW = "+600"  # seconds: a host whose clock is ten minutes fast
# A PostgreSQL worker hears of a task through NOTIFY: its poll is never what wakes it.
POLL = 30 if connection.vendor == "postgresql" else 0.5
ENQUEUER = """
import time, django
django.setup()
from tests.app import tasks
ids = []
for i in range({count}):
    time.sleep(0.4)  # an idle worker between tasks, so each one has to be woken
    ids.append(tasks.add.enqueue(i, 1).id)
print(" ".join(str(i) for i in ids))
"""


@pytest.fixture
def machines():
    with hosts.hosts(3, int(connection.settings_dict["PORT"])) as made:
        yield made


def on(host: hosts.Host, clock: str | None = None) -> dict[str, object]:
    """start_process arguments that run a process inside ``host``."""
    variable = "OFFLOAD_PG" if connection.vendor == "postgresql" else "OFFLOAD_MARIADB"
    env = {f"{variable}_HOST": host.gateway, f"{variable}_PORT": str(host.db_port)}
    return {"prefix": host.prefix, "env": {**env, **host.env(clock)}}


def _stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    return output


def _live(name: str) -> bool:
    return WorkerRecord.objects.filter(id__startswith=f"{name}:").exists()


def test_a_task_enqueued_on_one_host_wakes_a_worker_on_another(machines, start_process):
    first, second, _ = machines
    worker = start_process(*WORKER, "--name", "first", options={"POLL_INTERVAL": POLL},
                           **on(first))  # fmt: skip
    wait_for(lambda: _live("first"), timeout=60, what="the worker on the first host")
    enqueuer = start_process("-c", ENQUEUER.format(count=8), **on(second))
    output, _ = enqueuer.communicate(timeout=60)
    assert enqueuer.returncode == 0, output
    ids = [int(word) for word in output.split()[-8:]]
    wait_for(lambda: TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == 8)
    _stop(worker)
    waits = [
        (started - enqueued).total_seconds() * 1000
        for enqueued, started in TaskRecord.objects.filter(pk__in=ids).values_list(
            "enqueued_at", "started_at"
        )
    ]
    p50 = statistics.median(waits)
    print(f"\n[{connection.vendor}] across hosts: enqueue-to-start p50 {p50:.1f} ms, "
          f"max {max(waits):.1f} ms (poll interval {POLL} s)")  # fmt: skip
    # Woken within the notification's latency, far inside the poll interval.
    assert p50 < 150 if connection.vendor == "postgresql" else p50 < 1000, waits


def test_a_host_clock_ten_minutes_fast_changes_nothing(machines, start_process):
    """Leases, rescue and schedules run on the database's clock: a worker whose
    host clock is off neither takes over live leases nor fires early."""
    fast, true, _ = machines
    Schedule.objects.create(name="tick", task_path="tests.app.tasks.noop", interval=1)
    began = database_now(connection)
    # The fast host starts first, so it holds the elected roles (rescuer,
    # scheduler) that would misjudge leases and ticks by its clock.
    skewed = start_process(*WORKER, "--name", "fast", options=QUICK, **on(fast, SKEW))
    wait_for(lambda: _live("fast"), timeout=60, what="the fast host's worker")
    check = start_process("-c", "import datetime; print(datetime.datetime.now().isoformat())",
                          **on(fast, SKEW))  # fmt: skip
    seen, _ = check.communicate(timeout=30)
    assert seen.strip() > (began + timedelta(minutes=9)).replace(tzinfo=None).isoformat(), seen
    honest = start_process(*WORKER, "--name", "true", options=QUICK, **on(true))
    wait_for(lambda: _live("true"), timeout=60, what="the true host's worker")
    results = [tasks.mark_then_sleep.enqueue(f"skew-{i}", 0.3) for i in range(24)]
    ids = [int(result.id) for result in results]
    wait_for(
        lambda: TaskRecord.objects.filter(pk__in=ids, status=State.SUCCESSFUL).count() == 24,
        timeout=60,
        what="24 tasks on the two hosts",
    )
    ended = database_now(connection)
    for proc in (skewed, honest):
        _stop(proc)
    rows = TaskRecord.objects.filter(pk__in=ids)
    hosts_used = {owner.split(":")[0] for row in rows for owner in row.worker_ids}
    attempts = sorted({row.attempt for row in rows})
    print(f"\n[{connection.vendor}] a host {SKEW} s off: tasks ran on {sorted(hosts_used)}, "
          f"attempts {attempts}")  # fmt: skip
    # Each task ran once, on one worker, and no lease was judged lapsed.
    assert attempts == [1]
    assert all(row.errors == [] for row in rows)
    assert Run.objects.filter(marker__startswith="skew-").count() == 24
    assert hosts_used == {"fast", "true"}
    # The ticks were taken at the database's time, none ten minutes early.
    ticks = list(ScheduleFire.objects.values_list("fire_at", flat=True))
    assert ticks, "no schedule fired"
    early, late = began - timedelta(seconds=2), ended + timedelta(seconds=1)
    assert all(early <= at <= late for at in ticks), (began, ended, ticks)


def test_a_host_lost_whole_has_its_task_rescued_on_another(machines, start_process, backend):
    lost, survivor, _ = machines
    result = tasks.slow_first_attempt.enqueue("lost-host")
    start_process(*WORKER, "--name", "lost", options=QUICK, **on(lost))
    started = Run.objects.filter(marker="lost-host")
    wait_for(started.exists, timeout=60, what="the first attempt")
    other = start_process(*WORKER, "--name", "other", options=QUICK, **on(survivor))
    wait_for(lambda: _live("other"), timeout=60, what="the surviving host's worker")
    killed = time.monotonic()
    lost.power_off()
    wait_for(
        lambda: backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL,
        timeout=60,
        what="the task to be rescued on the surviving host",
    )
    took = time.monotonic() - killed
    _stop(other)
    row = TaskRecord.objects.get(pk=int(result.id))
    print(f"\n[{connection.vendor}] a host lost whole: its task finished on another "
          f"{took:.1f} s later (lease {QUICK['LEASE_SECONDS']} s)")  # fmt: skip
    assert row.attempt == 2
    assert [owner.split(":")[0] for owner in row.worker_ids] == ["lost", "other"]
    assert row.errors[0]["exception_class_path"] == "offload.exceptions.WorkerLost"
