"""The retention options and ``offload prune``'s flags, read without a database."""

from datetime import timedelta

import pytest
from django.core.management import CommandError

from offload.conf import parse_options
from offload.management.prune import parse_age, parse_statuses
from offload.retention import Rule, rules_from
from offload.states import State


def test_the_defaults_keep_a_week_a_month_and_a_week():
    options = parse_options({}, {"default"})
    assert rules_from(options) == [
        Rule(State.SUCCESSFUL, timedelta(days=7)),
        Rule(State.FAILED, timedelta(days=30)),
        Rule(State.CANCELLED, timedelta(days=7)),
    ]
    assert options.retain_schedule_fires == 30 * 86400
    assert (options.prune_batch_size, options.prune_max_rows_per_second) == (1000, 5000)


def test_a_retention_is_seconds_or_a_timedelta_and_none_keeps_forever():
    options = parse_options(
        {"RETAIN_SUCCESSFUL": timedelta(hours=12), "RETAIN_FAILED": 3600, "RETAIN_CANCELLED": None},
        {"default"},
    )
    assert options.problems == []
    assert rules_from(options) == [
        Rule(State.SUCCESSFUL, timedelta(hours=12)),
        Rule(State.FAILED, timedelta(hours=1)),
    ]
    assert parse_options({"PRUNE_MAX_ROWS_PER_SECOND": None}, {"default"}).problems == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"RETAIN_SUCCESSFUL": "7d"}, "must be int or float or timedelta or None, got str"),
        ({"RETAIN_FAILED": 0}, "must be greater than 0"),
        ({"RETAIN_FAILED": 59}, "must be between 60 and"),
        ({"RETAIN_CANCELLED": timedelta(seconds=30)}, "must be between 60 and"),
        ({"RETAIN_SCHEDULE_FIRES": timedelta(days=40_000)}, "must be between 60 and"),
        ({"RETAIN_SUCCESSFUL": True}, "got bool"),
        ({"PRUNE_BATCH_SIZE": 0}, "must be greater than 0"),
        ({"PRUNE_BATCH_SIZE": 200_000}, "must be between 1 and 100,000"),
        ({"PRUNE_BATCH_SIZE": None}, "must be int, got NoneType"),
        ({"PRUNE_MAX_ROWS_PER_SECOND": -5}, "must be greater than 0"),
    ],
)
def test_bad_retention_options_are_reported(raw, fragment):
    problems = parse_options(raw, {"default"}).problems
    assert any(fragment in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("90s", 90), (" 1.5h ", 5400)],
)
def test_ages(text, seconds):
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "7y", "-1d", "1d2h", "1e3d"])
def test_bad_ages(text):
    with pytest.raises(CommandError, match="expected an age such as 30m, 12h, 7d or 2w"):
        parse_age(text)


def test_statuses_are_the_finished_ones_by_any_case():
    assert parse_statuses(None) == [State.SUCCESSFUL, State.FAILED, State.CANCELLED]
    assert parse_statuses(["Failed", "failed", "CANCELLED"]) == [State.FAILED, State.CANCELLED]
    with pytest.raises(CommandError, match="READY tasks are never deleted"):
        parse_statuses(["ready"])
