import pytest
from django.core import checks
from django.tasks import task_backends
from django.test import override_settings

from offload.conf import parse_options
from offload.exceptions import BackendMisconfigured


def test_defaults():
    options = parse_options({}, {"default"})
    assert options.problems == []
    assert options.database == "default"
    assert options.max_payload_bytes == 1024 * 1024


def test_unknown_option_suggests_the_close_one():
    options = parse_options({"MAX_PAYLOAD_BYTE": 10}, {"default"})
    assert options.problems == [
        "Unknown option OPTIONS['MAX_PAYLOAD_BYTE']. Did you mean 'MAX_PAYLOAD_BYTES'?"
    ]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"MAX_PAYLOAD_BYTES": "1mb"}, "must be int, got str"),
        ({"MAX_PAYLOAD_BYTES": True}, "must be int, got bool"),
        ({"TRANSACTION_POOLER": 1}, "must be bool, got int"),
        ({"LISTEN_DATABASE": "nowhere"}, "names 'nowhere', which is not in DATABASES"),
        ({"MAX_PAYLOAD_BYTES": 0}, "must be greater than 0"),
        ({"POLL_INTERVAL": -1}, "must be greater than 0"),
        ({"MAX_ARGUMENT_DEPTH": 31}, "must be between 1 and 30, got 31"),
        ({"DATABASE": "nope"}, "names 'nope', which is not in DATABASES"),
    ],
)
def test_bad_values_are_reported(raw, fragment):
    problems = parse_options(raw, {"default"}).problems
    assert len(problems) == 1
    assert fragment in problems[0]


def test_bad_queue_names_are_reported():
    problems = parse_options({}, {"", "q" * 101, "ok"}).problems
    assert len(problems) == 2


def test_options_must_be_a_dict():
    assert parse_options(["DATABASE"], set()).problems == ["OPTIONS must be a dict, got list."]


@override_settings(USE_TZ=False)
def test_use_tz_is_required():
    assert any("USE_TZ = True" in p for p in parse_options({}, {"default"}).problems)


def test_problems_surface_in_system_checks_and_on_use():
    bad = {"default": {"BACKEND": "offload.backend.DatabaseBackend", "OPTIONS": {"TYPO": 1}}}
    with override_settings(TASKS=bad):
        backend = task_backends["default"]
        messages = backend.check()
        assert [m.id for m in messages] == ["offload.E002"]
        assert all(m.level == checks.ERROR for m in messages)
        with pytest.raises(BackendMisconfigured, match="Unknown option OPTIONS\\['TYPO'\\]"):
            backend.ensure_usable()


def test_missing_app_is_a_check_error():
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes"]):
        ids = [m.id for m in task_backends["default"].check()]
    assert "offload.E001" in ids


def test_a_backend_without_the_app_refuses_use():
    with (
        override_settings(INSTALLED_APPS=["django.contrib.contenttypes"]),
        pytest.raises(BackendMisconfigured, match="not in INSTALLED_APPS"),
    ):
        task_backends["default"].ensure_usable()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (600, None),
        (None, None),
        (1.5, None),
        (0, "must be between 1 and 2,592,000"),
        ("600", "must be int or float or None"),
        (31 * 86400, "must be between 1 and 2,592,000"),
    ],
)
def test_vacuum_blocker_warning(value, problem):
    options = parse_options({"VACUUM_BLOCKER_WARNING": value}, {"default"})
    if problem is None:
        assert options.problems == []
        assert options.vacuum_blocker_warning == value
    else:
        assert options.problems
        assert all("VACUUM_BLOCKER_WARNING" in found for found in options.problems)
        assert any(problem in found for found in options.problems)
