"""OPTIONS["EMBEDDED"]: what it accepts, and what it says about the rest."""

import pytest

from offload.conf import parse_options
from offload.embedded_options import EmbeddedSettings, parse_embedded


def test_empty_means_off_with_the_documented_defaults():
    settings, problems = parse_embedded({})
    assert problems == []
    assert settings == EmbeddedSettings()
    assert (settings.enabled, settings.threads, settings.processes) == (False, 2, 1)
    assert (settings.queues, settings.scheduler, settings.shutdown_timeout) == (None, False, 10.0)


def test_every_key_is_read():
    settings, problems = parse_embedded({
        "ENABLED": True, "THREADS": 4, "ASYNC_CONCURRENCY": 50, "QUEUES": ["default", "emails"],
        "PROCESSES": 3, "SCHEDULER": True, "SHUTDOWN_TIMEOUT": 2,
    })  # fmt: skip
    assert problems == []
    assert settings == EmbeddedSettings(
        enabled=True, threads=4, async_concurrency=50, queues=("default", "emails"),
        processes=3, scheduler=True, shutdown_timeout=2.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"ENABLED": "yes"}, "OPTIONS['EMBEDDED']['ENABLED'] must be True or False, got 'yes'."),
        ({"THREADS": 0}, "['THREADS'] must be a whole number from 1 to 32, got 0."),
        ({"THREADS": 33}, "['THREADS'] must be a whole number from 1 to 32, got 33."),
        ({"THREADS": True}, "['THREADS'] must be a whole number from 1 to 32, got True."),
        ({"PROCESSES": 65}, "['PROCESSES'] must be a whole number from 1 to 64, got 65."),
        ({"PROCESSES": 1.5}, "['PROCESSES'] must be a whole number from 1 to 64, got 1.5."),
        ({"QUEUES": []}, "['QUEUES'] must be a list of queue names, or None for every queue"),
        ({"QUEUES": "default"}, "['QUEUES'] must be a list of queue names"),
        ({"SHUTDOWN_TIMEOUT": -1}, "['SHUTDOWN_TIMEOUT'] must be seconds, from 0 to 3600, got -1."),
        ({"SCHEDULER": 1}, "['SCHEDULER'] must be True or False, got 1."),
        ({"THREAD": 2}, "Unknown key OPTIONS['EMBEDDED']['THREAD']. Did you mean 'THREADS'?"),
    ],
)
def test_a_bad_value_is_named_and_its_default_stands(raw, message):
    settings, problems = parse_embedded(raw)
    assert len(problems) == 1
    assert message in problems[0]
    assert settings == EmbeddedSettings()


def test_not_a_dict():
    assert parse_embedded(True)[1] == ["OPTIONS['EMBEDDED'] must be a dict, got bool True."]


def test_the_backends_options_report_it():
    options = parse_options({"EMBEDDED": {"ENABLED": True, "PROCESSES": 0}}, set())
    assert options.problems == [
        "OPTIONS['EMBEDDED']['PROCESSES'] must be a whole number from 1 to 64, got 0."
    ]
    assert parse_options({"EMBEDDED": {"ENABLED": True}}, set()).problems == []
