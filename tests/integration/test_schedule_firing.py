"""Schedules fire each tick exactly once, with an injected clock, on every database."""

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from offload.models import Schedule, ScheduleFire, TaskRecord
from offload.schedules.firing import Scheduler
from tests.helpers import drain, running_worker, wait_for


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def make(name: str, **fields: object) -> Schedule:
    fields.setdefault("task_path", "tests.app.tasks.noop")
    return Schedule.objects.create(name=name, **fields)


def fire_times(name: str) -> list[datetime]:
    return list(
        ScheduleFire.objects.filter(schedule__name=name)
        .order_by("fire_at")
        .values_list("fire_at", flat=True)
    )


def test_three_schedulers_over_one_hour_fire_every_tick_once(backend):
    for name, cron in (("minute", "* * * * *"), ("five", "*/5 * * * *"), ("hour", "0 * * * *")):
        make(name, cron=cron, timezone="UTC")
    start = at(2026, 1, 5, 9, 59, 30)
    end = at(2026, 1, 5, 11, 0, 0) - timedelta(microseconds=1)
    schedulers = [Scheduler(backend) for _ in range(3)]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []
    rng = random.Random(7)
    # Each step, every scheduler ticks at once, at its own jittered moment.
    steps = []
    moment = start
    while moment < end:
        steps.append([min(moment + timedelta(seconds=rng.uniform(0, 10)), end) for _ in range(3)])
        moment += timedelta(seconds=10)

    def run(index: int) -> None:
        try:
            for step in steps:
                barrier.wait(timeout=60)
                schedulers[index].tick(step[index])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors

    minutes = [at(2026, 1, 5, 10, m) for m in range(60)]
    assert fire_times("minute") == minutes
    assert fire_times("five") == minutes[::5]
    assert fire_times("hour") == [at(2026, 1, 5, 10)]
    fires = ScheduleFire.objects.all()
    task_ids = [f.task_id for f in fires]
    assert None not in task_ids
    assert len(set(task_ids)) == len(task_ids) == 73
    # Every task a scheduler wrote belongs to a tick: none was left behind by a
    # scheduler that lost the race for its tick.
    assert sorted(TaskRecord.objects.values_list("id", flat=True)) == sorted(task_ids)


def test_a_tick_already_fired_rolls_back_the_task_of_a_late_scheduler(backend):
    row = make("late", cron="* * * * *", timezone="UTC", next_fire_at=at(2026, 1, 5, 10))
    stale = Schedule.objects.get(pk=row.pk)
    first = Scheduler(backend).tick(at(2026, 1, 5, 10, 0, 1))
    assert [f.fire_at for f in first] == [at(2026, 1, 5, 10)]
    # A scheduler that read the row before the first one advanced it.
    again = Scheduler(backend).fire(stale, at(2026, 1, 5, 10), at(2026, 1, 5, 10, 0, 2))
    assert again is None
    assert TaskRecord.objects.count() == 1
    assert ScheduleFire.objects.count() == 1


@pytest.mark.parametrize(
    ("policy", "limit", "expected_minutes"),
    [
        ("skip", 100, []),
        ("once", 100, [10]),
        ("all", 100, list(range(1, 11))),
        ("all", 3, [8, 9, 10]),
    ],
)
def test_catch_up_after_ten_minutes_of_downtime(backend, policy, limit, expected_minutes):
    make("job", cron="* * * * *", timezone="UTC", catch_up=policy)
    scheduler = Scheduler(backend)
    scheduler.grace = timedelta(seconds=30)
    scheduler.catch_up_limit = limit
    scheduler.tick(at(2026, 1, 5, 9, 59, 50))  # sets the first tick: 10:00
    scheduler.tick(at(2026, 1, 5, 10, 0, 1))
    assert fire_times("job") == [at(2026, 1, 5, 10)]
    # Down from 10:00:01 to 10:10:40: ticks 10:01 to 10:10 were missed, the
    # last of them by 40 s, more than the grace.
    fired = scheduler.tick(at(2026, 1, 5, 10, 10, 40))
    assert [f.fire_at for f in fired] == [at(2026, 1, 5, 10, m) for m in expected_minutes]
    # Afterwards the schedule keeps its rhythm.
    assert [f.fire_at for f in scheduler.tick(at(2026, 1, 5, 10, 11, 1))] == [
        at(2026, 1, 5, 10, 11)
    ]
    assert TaskRecord.objects.count() == 2 + len(expected_minutes)


def test_skip_still_fires_a_tick_that_is_only_a_little_late(backend):
    make("job", cron="* * * * *", timezone="UTC", catch_up="skip")
    scheduler = Scheduler(backend)
    scheduler.tick(at(2026, 1, 5, 9, 59, 50))
    fired = scheduler.tick(at(2026, 1, 5, 10, 0, 20))  # 20 s late, grace 60 s
    assert [f.fire_at for f in fired] == [at(2026, 1, 5, 10)]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward on 29 March 2026: 02:30 does not exist; it fires once,
        # at 03:00 CEST (01:00 UTC), the first minute after the jump.
        (
            at(2026, 3, 27, 12),
            [at(2026, 3, 28, 1, 30), at(2026, 3, 29, 1, 0), at(2026, 3, 30, 0, 30)],
        ),
        # Fall back on 25 October 2026: 02:30 happens twice; it fires once, at
        # the first (02:30 CEST, 00:30 UTC), not again at 02:30 CET.
        (
            at(2026, 10, 23, 12),
            [at(2026, 10, 24, 0, 30), at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30)],
        ),
    ],
)
def test_daily_0230_in_berlin_across_dst_changes(backend, start, expected):
    make("nightly", cron="30 2 * * *", timezone="Europe/Berlin")
    scheduler = Scheduler(backend)
    moment = start
    while moment < start + timedelta(days=3, hours=12):
        scheduler.tick(moment)
        moment += timedelta(minutes=10)
    assert fire_times("nightly") == expected


def test_interval_schedules_fire_on_multiples_of_their_interval(backend):
    make("heartbeat", interval=30, args=["web"], task_path="tests.app.tasks.echo")
    scheduler = Scheduler(backend)
    scheduler.tick(at(2026, 1, 5, 10, 0, 10))
    for second in (30, 45, 61, 75, 91):
        scheduler.tick(at(2026, 1, 5, 10, 0, 0) + timedelta(seconds=second))
    assert fire_times("heartbeat") == [
        at(2026, 1, 5, 10, 0, 30), at(2026, 1, 5, 10, 1, 0), at(2026, 1, 5, 10, 1, 30)
    ]  # fmt: skip
    assert {tuple(r.args) for r in TaskRecord.objects.all()} == {("web",)}


def test_paused_schedules_do_not_fire(backend):
    make("paused", cron="* * * * *", timezone="UTC", enabled=False)
    scheduler = Scheduler(backend)
    scheduler.tick(at(2026, 1, 5, 9, 59, 50))
    scheduler.tick(at(2026, 1, 5, 10, 0, 1))
    assert fire_times("paused") == []


@pytest.mark.parametrize("skip_if_running", [True, False])
def test_overlap_rule_with_a_slow_task(backend, skip_if_running):
    make(
        "slow", interval=60, task_path="tests.app.tasks.sleep_then_return",
        args=[1.5, "done"], skip_if_running=skip_if_running,
    )  # fmt: skip
    scheduler = Scheduler(backend)
    base = at(2026, 1, 5, 10)
    scheduler.tick(base - timedelta(seconds=30))
    scheduler.tick(base)  # enqueued: READY
    scheduler.tick(base + timedelta(minutes=1))  # previous run READY
    with running_worker():
        wait_for(
            lambda: TaskRecord.objects.filter(status="RUNNING").exists(), what="a running task"
        )
        scheduler.tick(base + timedelta(minutes=2))  # previous run RUNNING
        wait_for(
            lambda: not TaskRecord.objects.filter(status__in=["READY", "RUNNING"]).exists(),
            timeout=30,
            what="all runs to finish",
        )
    scheduler.tick(base + timedelta(minutes=3))  # previous run finished
    outcomes = list(ScheduleFire.objects.order_by("fire_at").values_list("outcome", flat=True))
    if skip_if_running:
        assert outcomes == ["enqueued", "skipped", "skipped", "enqueued"]
    else:
        assert outcomes == ["enqueued"] * 4
    enqueued = ScheduleFire.objects.filter(outcome="enqueued").count()
    assert TaskRecord.objects.count() == enqueued


def test_a_command_on_a_schedule_stores_its_output(backend):
    make("greeting", command="greet", args=["Ada"], kwargs={"shout": True}, interval=60)
    scheduler = Scheduler(backend)
    scheduler.tick(at(2026, 1, 5, 9, 59, 30))
    [fired] = scheduler.tick(at(2026, 1, 5, 10, 0, 1))
    drain()
    record = TaskRecord.objects.get(pk=fired.task_id)
    assert record.status == "SUCCESSFUL"
    assert record.task_path == "offload.command_tasks.run_allowed_command"
    assert record.return_value == {
        "command": "greet", "exit_status": 0, "stdout": "HELLO, ADA!\n", "stderr": "greeted\n"
    }  # fmt: skip
