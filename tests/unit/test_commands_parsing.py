"""Parsing of ``offload enqueue`` flags (no database)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from offload.command_tasks import parse_delay, parse_json, parse_when

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("30", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1.5m", 90)],
)
def test_delays(text, seconds):
    assert parse_delay(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5 minutes", "-5m", "m5", "5w"])
def test_bad_delays_are_refused(text):
    with pytest.raises(ValueError, match="expected a delay such as 30s, 5m, 2h or 1d"):
        parse_delay(text)


def test_at_and_in():
    assert parse_when(None, None, NOW) is None
    assert parse_when(None, "5m", NOW) == NOW + timedelta(minutes=5)
    assert parse_when("2030-01-31T09:00+01:00", None, NOW) == datetime(2030, 1, 31, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="not both"):
        parse_when("2030-01-31T09:00", "5m", NOW)
    with pytest.raises(ValueError, match="expected an ISO datetime"):
        parse_when("tomorrow", None, NOW)


@override_settings(TIME_ZONE="Europe/Berlin")
def test_a_naive_at_is_read_in_time_zone():
    assert parse_when("2030-01-31T09:00", None, NOW) == datetime(2030, 1, 31, 8, tzinfo=UTC)


def test_json_flags():
    assert parse_json("--args", None, list) == []
    assert parse_json("--args", '[1, "a"]', list) == [1, "a"]
    assert parse_json("--kwargs", '{"a": 1}', dict) == {"a": 1}
    with pytest.raises(ValueError, match="--args: not valid JSON"):
        parse_json("--args", "[1,", list)
    with pytest.raises(ValueError, match="--kwargs must be a JSON object"):
        parse_json("--kwargs", "[1]", dict)
