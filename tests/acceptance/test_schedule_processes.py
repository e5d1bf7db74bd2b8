"""Schedulers inside real ``offload worker`` processes: each tick fires once, even when
the scheduler that was firing is killed just before a tick."""

import signal
import time
from datetime import UTC, datetime, timedelta

from django.db import connection

from offload.models import Schedule, ScheduleFire, TaskRecord
from tests.helpers import wait_for

WORKER = ("-m", "django", "offload", "worker", "--processes", "1", "--threads", "2")
INTERVAL = 2  # seconds between ticks


def fires() -> list[ScheduleFire]:
    return list(ScheduleFire.objects.order_by("fire_at"))


def test_killing_the_active_scheduler_just_before_a_tick_still_fires_it_once(start_process):
    # catch_up "all": a pass delayed by a loaded machine still fires every
    # tick, so the test checks exactly-once, not punctuality.
    Schedule.objects.create(
        name="tick", task_path="tests.app.tasks.noop", interval=INTERVAL, catch_up="all"
    )
    workers = {name: start_process(*WORKER, "--name", name) for name in ("alpha", "beta")}
    wait_for(lambda: len(fires()) >= 3, timeout=30, what="three ticks")
    active = fires()[-1].fired_by.split(":")[0]
    survivor = "beta" if active == "alpha" else "alpha"
    # Just before the next tick, kill the scheduler that fired the last one.
    next_tick = (int(time.time()) // INTERVAL + 1) * INTERVAL
    time.sleep(max(0.0, next_tick - 0.05 - time.time()))
    workers[active].send_signal(signal.SIGKILL)
    workers[active].wait(timeout=10)
    killed_at = datetime.fromtimestamp(next_tick, UTC)
    wait_for(
        lambda: ScheduleFire.objects.filter(fire_at__gte=killed_at + timedelta(seconds=4)).exists(),
        timeout=30,
        what="ticks after the kill",
    )
    workers[survivor].send_signal(signal.SIGTERM)
    output, _ = workers[survivor].communicate(timeout=60)
    assert workers[survivor].returncode == 0, output

    rows = fires()
    times = [row.fire_at for row in rows]
    print(f"\n[{connection.vendor}] {len(rows)} ticks; killed {active} before {killed_at:%H:%M:%S}")
    # Every tick from the first to the last, none twice, none missing.
    assert times == [times[0] + timedelta(seconds=INTERVAL * i) for i in range(len(times))]
    assert killed_at in times
    after = [row for row in rows if row.fire_at > killed_at]
    assert {row.fired_by.split(":")[0] for row in after} == {survivor}
    task_ids = [row.task_id for row in rows]
    assert len(set(task_ids)) == len(task_ids)
    assert sorted(TaskRecord.objects.values_list("id", flat=True)) == sorted(task_ids)


def test_the_worker_fires_schedules_and_no_scheduler_turns_it_off(start_process):
    Schedule.objects.create(name="tick", task_path="tests.app.tasks.noop", interval=1)
    quiet = start_process(*WORKER, "--name", "quiet", "--no-scheduler")
    time.sleep(3)
    assert not ScheduleFire.objects.exists()
    quiet.send_signal(signal.SIGTERM)
    quiet.communicate(timeout=60)
    busy = start_process(*WORKER, "--name", "busy")
    wait_for(
        lambda: TaskRecord.objects.filter(status="SUCCESSFUL").count() >= 2,
        timeout=30,
        what="scheduled tasks run by the worker",
    )
    busy.send_signal(signal.SIGTERM)
    output, _ = busy.communicate(timeout=60)
    assert busy.returncode == 0, output
    assert {row.fired_by.split(":")[0] for row in fires()} == {"busy"}
