"""The retry policy and its settings, without a database."""

import random

import pytest

from offload.conf import parse_options
from offload.retries import RetryPolicy


def test_exceptions_are_retried_only_when_listed_and_attempts_remain():
    policy = RetryPolicy(max_attempts=3, retry_on=(OSError,), dont_retry_on=(FileNotFoundError,))
    assert policy.retries_exception(ConnectionError(), attempt=1)  # an OSError
    assert policy.retries_exception(ConnectionError(), attempt=2)
    assert not policy.retries_exception(ConnectionError(), attempt=3)  # the last one
    assert not policy.retries_exception(FileNotFoundError(), attempt=1)  # excluded
    assert not policy.retries_exception(ValueError(), attempt=1)  # not listed
    assert not RetryPolicy().retries_exception(ValueError(), attempt=1)  # none by default


def test_exponential_backoff_doubles_up_to_the_cap_and_jitter_keeps_half():
    policy = RetryPolicy(delay=2, max_delay=10, jitter=False)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
    jittered = RetryPolicy(delay=8, max_delay=100)
    rng = random.Random(1)
    delays = [jittered.delay_after(1, rng) for _ in range(200)]
    assert all(4 <= d <= 8 for d in delays)
    assert max(delays) - min(delays) > 3  # actually spread


def test_fixed_backoff_waits_the_same_every_time():
    policy = RetryPolicy(backoff="fixed", delay=3, jitter=False)
    assert [policy.delay_after(n) for n in (1, 5, 9)] == [3, 3, 3]


def test_retry_options_are_read_and_checked():
    options = parse_options(
        {"RETRY": {"MAX_ATTEMPTS": 5, "RETRY_ON": ["builtins.ConnectionError"], "JITTER": False}},
        {"default"},
    )
    assert options.problems == []
    assert options.retry.max_attempts == 5
    assert options.retry.retry_on == (ConnectionError,)
    assert options.retry.jitter is False


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"RETRY": {"MAX_ATEMPTS": 5}}, "Did you mean 'MAX_ATTEMPTS'?"),
        ({"RETRY": {"MAX_ATTEMPTS": 0}}, "max_attempts must be an integer of at least 1"),
        ({"RETRY": {"BACKOFF": "linear"}}, "backoff must be one of exponential, fixed"),
        ({"RETRY": {"DELAY": -1}}, "delay must be a number of seconds >= 0"),
        ({"RETRY": {"JITTER": "yes"}}, "jitter must be True or False"),
        ({"RETRY": {"RETRY_ON": ["no.such.Error"]}}, "RETRY_ON"),
        ({"RETRY": {"RETRY_ON": ["builtins.len"]}}, "is not an exception class"),
        ({"RETRY": {"RETRY_ON": "builtins.OSError"}}, "must be a list of exception import paths"),
        ({"TIMEOUT": 0}, "must be greater than 0"),
        ({"LEASE_SECONDS": 6, "HEARTBEAT_SECONDS": 5}, "must be at most half"),
    ],
)
def test_bad_reliability_options_are_reported(raw, fragment):
    problems = parse_options(raw, {"default"}).problems
    assert any(fragment in p for p in problems), problems


def test_timeout_may_be_none():
    assert parse_options({"TIMEOUT": None}, {"default"}).problems == []
