"""The backend's ``OPTIONS``: parsed and validated once, when the backend is built.

Problems are collected rather than raised, so ``manage.py check`` can report all
of them at once; using a misconfigured backend raises ``BackendMisconfigured``.
"""

import difflib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from offload.payload import MAX_ARGUMENT_DEPTH
from offload.retries import RetryPolicy, check_policy_values, import_exceptions

# Name -> (default, allowed types, description). Every option is documented here
# and in docs/configuration.md.
KNOWN_OPTIONS: dict[str, tuple[object, tuple[type, ...], str]] = {
    "DATABASE": ("default", (str,), "database alias that holds the tasks tables"),
    "MAX_PAYLOAD_BYTES": (1024 * 1024, (int,), "largest args + kwargs accepted, as JSON bytes"),
    "MAX_ARGUMENT_DEPTH": (
        MAX_ARGUMENT_DEPTH,
        (int,),
        "most levels of lists and dicts nested in one task argument",
    ),
    "LEASE_SECONDS": (
        30,
        (int, float),
        "how long a claim lasts without a heartbeat before the task may be rescued",
    ),
    "HEARTBEAT_SECONDS": (
        5,
        (int, float),
        "how often a worker process renews its leases (less than LEASE_SECONDS / 2)",
    ),
    "RETRY": ({}, (dict,), "default retry policy of every task (see RETRY_KEYS)"),
    "TIMEOUT": (
        None,
        (int, float, type(None)),
        "default seconds one attempt may run before it is killed (None: no limit)",
    ),
    "CANCEL_GRACE_SECONDS": (
        10,
        (int, float),
        "seconds a running task has, once cancelled, to stop on its own before it is killed",
    ),
    "CLAIM_BATCH_SIZE": (
        20,
        (int,),
        "most tasks a worker claims in one statement (fewer when its tasks are slow)",
    ),
    "WRITE_BEHIND": (
        20,
        (int,),
        "most successful outcomes a worker process holds unwritten while its threads "
        "go on (0: each thread waits for its outcome's write)",
    ),
    "ENQUEUE_BATCH_SIZE": (
        1000,
        (int,),
        "most tasks enqueue_many inserts with one INSERT statement",
    ),
    "POLL_INTERVAL": (
        1.0,
        (int, float),
        "most seconds an idle worker waits before looking for due tasks again",
    ),
    "PROGRESS_INTERVAL": (
        1.0,
        (int, float),
        "most often, in seconds, a worker writes the progress its running tasks report",
    ),
    "WORKER": ({}, (dict,), "worker settings (see offload.worker_options), like its flags"),
    "SCHEDULES": (
        {},
        (dict,),
        "schedules defined in settings: name -> schedule (docs/schedules.md)",
    ),
    "SCHEDULE_GRACE_SECONDS": (
        60,
        (int, float),
        "how late a tick may fire under the 'skip' catch-up policy",
    ),
    "SCHEDULE_CATCH_UP_LIMIT": (
        100,
        (int,),
        "most missed ticks fired at once under the 'all' catch-up policy",
    ),
    "SCHEDULER_INTERVAL": (1.0, (int, float), "seconds between two passes of a scheduler"),
    "ADMIN_COUNT_LIMIT": (
        10_000,
        (int,),
        "most rows the admin counts for a task list; past it the list says 'more than'",
    ),
    "DASHBOARD_REFRESH_SECONDS": (
        5,
        (int, float),
        "how often the dashboard refreshes itself (1 to 3600 seconds)",
    ),
    "DASHBOARD_SAMPLE_SIZE": (
        5_000,
        (int,),
        "most finished tasks the dashboard reads to compute wait and run time percentiles",
    ),
}

# Inclusive bounds of options whose useful range is narrower than "positive".
OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    # Below a tenth of a second a task that reports in a loop would cost a
    # write per report again.
    "PROGRESS_INTERVAL": (0.1, 3600),
    # MariaDB's JSON check refuses columns nested 32 deep, and the stored list
    # of args (or dict of kwargs) is one level: past 30, a task enqueued fine on
    # one database would be refused on another.
    "MAX_ARGUMENT_DEPTH": (1, MAX_ARGUMENT_DEPTH),
    "WRITE_BEHIND": (0, 10_000),
    "ADMIN_COUNT_LIMIT": (100, 10_000_000),
    "DASHBOARD_REFRESH_SECONDS": (1, 3600),
    "DASHBOARD_SAMPLE_SIZE": (100, 1_000_000),
}

# Options for which 0 means "off" rather than a mistake.
ZERO_ALLOWED = {"WRITE_BEHIND"}

# OPTIONS["RETRY"] keys -> RetryPolicy fields.
RETRY_KEYS = {
    "MAX_ATTEMPTS": "max_attempts",
    "BACKOFF": "backoff",
    "DELAY": "delay",
    "MAX_DELAY": "max_delay",
    "JITTER": "jitter",
    "RETRY_ON": "retry_on",
    "DONT_RETRY_ON": "dont_retry_on",
}

MAX_NAME_LENGTH = 100  # queue names and worker names: the width of their columns


@dataclass(frozen=True)
class Options:
    database: str = "default"
    max_payload_bytes: int = 1024 * 1024
    max_argument_depth: int = MAX_ARGUMENT_DEPTH
    lease_seconds: float = 30
    heartbeat_seconds: float = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    cancel_grace_seconds: float = 10
    claim_batch_size: int = 20
    write_behind: int = 20
    enqueue_batch_size: int = 1000
    poll_interval: float = 1.0
    progress_interval: float = 1.0
    worker: dict[str, Any] = field(default_factory=dict)
    schedules: dict[str, Any] = field(default_factory=dict)
    schedule_grace_seconds: float = 60
    schedule_catch_up_limit: int = 100
    scheduler_interval: float = 1.0
    admin_count_limit: int = 10_000
    dashboard_refresh_seconds: float = 5
    dashboard_sample_size: int = 5_000
    problems: list[str] = field(default_factory=list)


def _positive(name: str, value: object, problems: list[str]) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
        problems.append(f"OPTIONS[{name!r}] must be greater than 0, got {value!r}.")


def parse_options(raw: object, queues: set[str]) -> Options:
    """Read ``OPTIONS`` into :class:`Options`, listing every problem found."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        return Options(problems=[f"OPTIONS must be a dict, got {type(raw).__name__}."])

    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in KNOWN_OPTIONS:
            close = difflib.get_close_matches(str(name), KNOWN_OPTIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"Unknown option OPTIONS[{name!r}].{hint}")
            continue
        _default, types, _doc = KNOWN_OPTIONS[name]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            problems.append(
                f"OPTIONS[{name!r}] must be {expected}, got {type(value).__name__} {value!r}."
            )
            continue
        if name not in ZERO_ALLOWED:
            _positive(name, value, problems)
        if name in OPTION_BOUNDS:
            low, high = OPTION_BOUNDS[name]
            if isinstance(value, (int, float)) and not low <= value <= high:
                problems.append(
                    f"OPTIONS[{name!r}] must be between {low:,} and {high:,}, got {value!r}."
                )
                continue
        values[name.lower()] = value

    if "retry" in values:
        values["retry"] = _parse_retry(values["retry"], problems)
    lease = values.get("lease_seconds", Options.lease_seconds)
    heartbeat = values.get("heartbeat_seconds", Options.heartbeat_seconds)
    if heartbeat * 2 > lease:
        problems.append(
            f"OPTIONS['HEARTBEAT_SECONDS'] ({heartbeat:g}) must be at most half of "
            f"OPTIONS['LEASE_SECONDS'] ({lease:g}), so one late heartbeat does not "
            "lose a lease."
        )

    if "worker" in values:
        # Imported here: worker_options builds on this module.
        from offload.worker_options import check_options

        problems.extend(check_options(values["worker"]))
    if "schedules" in values:
        # Imported here: the schedules package builds on this module.
        from offload.schedules.spec import spec_problems

        problems.extend(spec_problems(values["schedules"], settings.TIME_ZONE or "UTC"))

    database = values.get("database", "default")
    if database not in settings.DATABASES:
        problems.append(
            f"OPTIONS['DATABASE'] names {database!r}, which is not in DATABASES "
            f"({', '.join(sorted(settings.DATABASES))})."
        )
    problems.extend(
        f"Queue name {name!r} in QUEUES must be a non-empty string of at most "
        f"{MAX_NAME_LENGTH} characters."
        for name in sorted(queues, key=str)
        if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH
    )
    if not getattr(settings, "USE_TZ", True):
        problems.append(
            "offload needs USE_TZ = True: task times are compared with the database's clock in UTC."
        )
    return Options(**values, problems=problems)


def _parse_retry(raw: dict[str, Any], problems: list[str]) -> RetryPolicy:
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in RETRY_KEYS:
            close = difflib.get_close_matches(str(key), RETRY_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"Unknown key OPTIONS['RETRY'][{key!r}].{hint}")
            continue
        changes[RETRY_KEYS[key]] = value
    found = check_policy_values(
        max_attempts=changes.get("max_attempts"),
        backoff=changes.get("backoff"),
        delay=changes.get("delay"),
        max_delay=changes.get("max_delay"),
        where="OPTIONS['RETRY']:",
    )
    if "jitter" in changes and not isinstance(changes["jitter"], bool):
        found.append(f"OPTIONS['RETRY']: jitter must be True or False, got {changes['jitter']!r}.")
    for name in ("retry_on", "dont_retry_on"):
        if name not in changes:
            continue
        paths = changes[name]
        if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
            found.append(
                f"OPTIONS['RETRY']: {name.upper()} must be a list of exception import paths, "
                f"got {paths!r}."
            )
            continue
        try:
            changes[name] = import_exceptions(paths)
        except (ImportError, TypeError) as exc:
            found.append(f"OPTIONS['RETRY']: {name.upper()}: {exc}")
    problems.extend(found)
    if found:
        return RetryPolicy()
    return RetryPolicy().overridden(**changes)
