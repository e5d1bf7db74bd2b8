"""Schedule definitions: parsing, validation messages and fire times (no database)."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.tasks import task_backends
from django.test import override_settings

from offload.conf import parse_options
from offload.schedules.checks import check_schedules
from offload.schedules.spec import (
    InvalidSchedule,
    Timing,
    normalize_cron,
    parse_spec,
    spec_problems,
)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("alias", "fields"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("  */5   * * * * ", "*/5 * * * *"),
    ],
)
def test_aliases_and_spacing_normalize_to_five_fields(alias, fields):
    assert normalize_cron(alias) == fields


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "must have five fields"),
        ("0 0 * * * *", "must have five fields"),
        ("@fortnightly", "must have five fields"),
        ("61 * * * *", "is not valid: Bad minute"),
        ("* 24 * * *", "is not valid"),
    ],
)
def test_bad_cron_expressions_are_refused_with_the_reason(cron, message):
    with pytest.raises(InvalidSchedule, match=message):
        normalize_cron(cron)


def test_settings_form_from_the_issue_is_accepted():
    schedules = {
        "nightly-report": {"task": "reports.tasks.build", "cron": "0 3 * * *",
                           "kwargs": {"full": True}},
        "clear-sessions": {"command": "clearsessions", "cron": "@daily"},
        "heartbeat": {"task": "monitoring.tasks.ping", "interval": 30, "args": ["web"]},
    }  # fmt: skip
    assert spec_problems(schedules, "UTC") == []
    heartbeat = parse_spec("heartbeat", schedules["heartbeat"], "Europe/Paris")
    assert heartbeat.timing == Timing(interval=30, timezone="Europe/Paris")
    assert heartbeat.args == ["web"]
    clear = parse_spec("clear-sessions", schedules["clear-sessions"], "UTC")
    assert (clear.command, clear.timing.cron, clear.catch_up) == (
        "clearsessions",
        "0 0 * * *",
        "once",
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cron": "@daily"}, "exactly one of 'task' and 'command'"),
        ({"task": "a.b", "command": "x", "cron": "@daily"}, "exactly one of 'task' and 'command'"),
        ({"task": "a.b"}, "exactly one of 'cron' and 'interval'"),
        ({"task": "a.b", "cron": "@daily", "interval": 5}, "exactly one of 'cron' and 'interval'"),
        ({"task": "nodots", "cron": "@daily"}, "must be an import path"),
        ({"task": "a.b", "interval": 0}, "interval must be a whole number of seconds"),
        ({"task": "a.b", "interval": 1.5}, "interval must be a whole number of seconds"),
        ({"task": "a.b", "interval": True}, "interval must be a whole number of seconds"),
        ({"task": "a.b", "cron": "@daily", "timezone": "Mars/Olympus"}, "not a known IANA"),
        ({"task": "a.b", "cron": "@daily", "args": "x"}, "args must be a list"),
        ({"task": "a.b", "cron": "@daily", "kwargs": {1: 2}}, "kwargs must be a dict"),
        ({"task": "a.b", "cron": "@daily", "priority": 101}, "priority must be"),
        ({"task": "a.b", "cron": "@daily", "catch_up": "never"}, "catch_up must be one of"),
        ({"task": "a.b", "cron": "@daily", "skip_if_running": "yes"}, "skip_if_running"),
        ({"task": "a.b", "cron": "@daily", "croon": 1}, "unknown key\\(s\\) 'croon'"),
        ("a.b", "must be a dict"),
    ],
)
def test_malformed_schedules_are_refused_with_the_reason(entry, message):
    with pytest.raises(InvalidSchedule, match=message):
        parse_spec("job", entry, "UTC")


def test_every_malformed_schedule_is_named_in_the_schedule_problems():
    options = {"SCHEDULES": {
        "good": {"task": "a.b", "cron": "@daily"},
        "bad-cron": {"task": "a.b", "cron": "99 * * * *"},
        "no-timing": {"command": "clearsessions"},
    }}  # fmt: skip
    parsed = parse_options(options, {"default"})
    assert parsed.problems == []  # the backend is fine: one bad schedule stops no enqueue
    problems = parsed.schedule_problems
    assert len(problems) == 2
    assert problems[0].startswith("OPTIONS['SCHEDULES']['bad-cron']: cron '99 * * * *'")
    assert problems[1].startswith("OPTIONS['SCHEDULES']['no-timing']: needs exactly one")


def test_a_malformed_schedule_is_a_system_check_error():
    tasks = {"default": {"BACKEND": "offload.backend.DatabaseBackend", "OPTIONS": {
        "SCHEDULES": {"nightly": {"task": "a.b", "cron": "0 25 * * *"}}}}}  # fmt: skip
    with override_settings(TASKS=tasks):
        messages = [*task_backends["default"].check(), *check_schedules()]
    assert [m.id for m in messages] == ["offload.E004"]
    assert "OPTIONS['SCHEDULES']['nightly']" in messages[0].msg


def test_schedule_limits_must_be_positive():
    problems = parse_options({"SCHEDULE_CATCH_UP_LIMIT": 0, "SCHEDULER_INTERVAL": -1}, set())
    assert len(problems.problems) == 2


def test_cron_fire_times_after_and_until_a_moment():
    timing = Timing(cron="*/15 * * * *", timezone="UTC")
    assert timing.upcoming(at(2026, 1, 1, 10, 0), 3) == [
        at(2026, 1, 1, 10, 15), at(2026, 1, 1, 10, 30), at(2026, 1, 1, 10, 45)
    ]  # fmt: skip
    # "until" includes the moment itself when it is a tick.
    until = timing.until(at(2026, 1, 1, 10, 30))
    assert [next(until), next(until)] == [at(2026, 1, 1, 10, 30), at(2026, 1, 1, 10, 15)]
    until = timing.until(at(2026, 1, 1, 10, 29, 59, 999999))
    assert next(until) == at(2026, 1, 1, 10, 15)


def test_cron_fire_times_follow_the_schedules_time_zone():
    timing = Timing(cron="0 9 * * *", timezone="America/New_York")
    assert timing.next_after(at(2026, 1, 1)) == at(2026, 1, 1, 14)  # 09:00 EST
    assert timing.next_after(at(2026, 7, 1)) == at(2026, 7, 1, 13)  # 09:00 EDT


def test_interval_fire_times_are_multiples_of_the_interval():
    timing = Timing(interval=30)
    assert timing.upcoming(at(2026, 1, 1, 10, 0, 10), 2) == [
        at(2026, 1, 1, 10, 0, 30), at(2026, 1, 1, 10, 1)
    ]  # fmt: skip
    assert timing.next_after(at(2026, 1, 1, 10, 0, 30)) == at(2026, 1, 1, 10, 1)
    until = timing.until(at(2026, 1, 1, 10, 0, 30))
    assert [next(until), next(until)] == [at(2026, 1, 1, 10, 0, 30), at(2026, 1, 1, 10)]


def test_interval_fire_times_ignore_dst():
    timing = Timing(interval=3600, timezone="Europe/Berlin")
    fires = timing.upcoming(at(2026, 3, 29, 0, 30), 3)
    assert [b - a for a, b in itertools.pairwise(fires)] == [timedelta(hours=1)] * 2
