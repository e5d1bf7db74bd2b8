"""The backend's ``OPTIONS``: parsed and validated once, when the backend is built.

Problems are collected rather than raised, so ``manage.py check`` can report all
of them at once; using a misconfigured backend raises ``BackendMisconfigured``.
"""

import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import timedelta
from types import NoneType, UnionType
from typing import Any

from django.conf import settings

from offload.embedded_options import parse_embedded
from offload.limits import MAX_ARGUMENT_DEPTH, MAX_NAME_LENGTH
from offload.retries import RetryPolicy, check_policy_values, import_exceptions
from offload.schedules.spec import spec_problems
from offload.suggest import did_you_mean
from offload.worker_options import check_options

# A bearer token shorter than this could be guessed.
MIN_TOKEN_LENGTH = 16

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


def option(
    default: Any,
    doc: str,
    *,
    bounds: tuple[float, float] | None = None,
    zero_allowed: bool = False,
    accepts: tuple[type, ...] | None = None,
) -> Any:
    """One field of :class:`Options`: its default, description and checks, in one place.

    ``bounds`` is the inclusive useful range, where it is narrower than "positive";
    ``zero_allowed`` makes 0 mean "off" rather than a mistake; ``accepts`` gives
    the types the raw setting may have when they are not the field's own.
    A dict default is copied for each ``Options``.
    """
    metadata = {"doc": doc, "bounds": bounds, "zero_allowed": zero_allowed, "accepts": accepts}
    if isinstance(default, dict):
        return field(default_factory=default.copy, metadata=metadata)
    return field(default=default, metadata=metadata)


DAY = 24 * 3600
# A retention shorter than a minute would delete results before a caller that
# polls for them has read them; longer than a century is "forever", said None.
RETENTION_BOUNDS = (60, 36_500 * DAY)
RETENTION_TYPES = (int, float, timedelta, NoneType)
RETENTION_OPTIONS = (
    "RETAIN_SUCCESSFUL",
    "RETAIN_FAILED",
    "RETAIN_CANCELLED",
    "RETAIN_SCHEDULE_FIRES",
)


def retention(days: int, kept: str) -> Any:
    """A retention option: ``days`` by default, in seconds or a timedelta, None forever."""
    return option(
        days * DAY,
        f"seconds (or a timedelta) {kept} (None: forever)",
        bounds=RETENTION_BOUNDS,
        accepts=RETENTION_TYPES,
    )


@dataclass(frozen=True)
class Options:
    """The backend's settings. Each field is the option of its name in upper case
    (``lease_seconds``: ``OPTIONS["LEASE_SECONDS"]``); its default and description
    are written here only, and docs/configuration.md documents each."""

    database: str = option("default", "database alias that holds the tasks tables")
    # Behind PgBouncer (or another pooler) in transaction mode, a session
    # setting or a LISTEN made on one transaction lands on whichever server
    # connection served it: the worker must keep no session state there.
    transaction_pooler: bool = option(
        False,
        "the database is reached through a pooler in transaction mode: workers keep no "
        "session state on it (no session settings, no LISTEN)",
        zero_allowed=True,
    )
    listen_database: str | None = option(
        None,
        "database alias of a direct connection to the same PostgreSQL, on which workers "
        "LISTEN for new tasks (None: the tasks' database, unless TRANSACTION_POOLER)",
    )
    max_payload_bytes: int = option(1024 * 1024, "largest args + kwargs accepted, as JSON bytes")
    # MariaDB's JSON check refuses columns nested 32 deep, and the stored list
    # of args (or dict of kwargs) is one level: past 30, a task enqueued fine on
    # one database would be refused on another.
    max_argument_depth: int = option(
        MAX_ARGUMENT_DEPTH,
        "most levels of lists and dicts nested in one task argument",
        bounds=(1, MAX_ARGUMENT_DEPTH),
    )
    lease_seconds: float = option(
        30, "how long a claim lasts without a heartbeat before the task may be rescued"
    )
    heartbeat_seconds: float = option(
        5, "how often a worker process renews its leases (less than LEASE_SECONDS / 2)"
    )
    heartbeat_file: str = option(
        "",
        "file each worker supervisor touches every HEARTBEAT_SECONDS, for a liveness probe "
        "(default: none)",
    )
    metrics_token: str = option(
        "",
        "bearer token that may read offload.views.metrics without a staff login "
        "(default: none, staff only)",
    )
    tracing: bool = option(
        True,
        "OpenTelemetry spans of enqueues and attempts when the project traces "
        "(see offload.tracing)",
    )
    retry: RetryPolicy = option(  # noqa: RUF009 (option() returns a field)
        RetryPolicy(), "default retry policy of every task (see RETRY_KEYS)", accepts=(dict,)
    )
    timeout: float | None = option(
        None, "default seconds one attempt may run before it is killed (None: no limit)"
    )
    cancel_grace_seconds: float = option(
        10, "seconds a running task has, once cancelled, to stop on its own before it is killed"
    )
    claim_batch_size: int = option(
        20, "most tasks a worker claims in one statement (fewer when its tasks are slow)"
    )
    write_behind: int = option(
        20,
        "most successful outcomes a worker process holds unwritten while its threads "
        "go on (0: each thread waits for its outcome's write)",
        bounds=(0, 10_000),
        zero_allowed=True,
    )
    enqueue_batch_size: int = option(
        1000, "most tasks enqueue_many inserts with one INSERT statement"
    )
    poll_interval: float = option(
        1.0, "most seconds an idle worker waits before looking for due tasks again"
    )
    progress_interval: float = option(
        1.0,
        "most often, in seconds, a worker writes the progress its running tasks report",
        # Below a tenth of a second a task that reports in a loop would cost a
        # write per report again.
        bounds=(0.1, 3600),
    )
    worker: dict[str, Any] = option(  # noqa: RUF009 (option() returns a field)
        {}, "worker settings (see offload.worker_options), like its flags"
    )
    embedded: dict[str, Any] = option(  # noqa: RUF009 (option() returns a field)
        {},
        "a worker run inside the web processes (docs/embedded.md): ENABLED, THREADS, "
        "ASYNC_CONCURRENCY, QUEUES, PROCESSES, SCHEDULER, SHUTDOWN_TIMEOUT",
    )
    schedules: dict[str, Any] = option(  # noqa: RUF009 (option() returns a field)
        {}, "schedules defined in settings: name -> schedule (docs/schedules.md)"
    )
    schedule_grace_seconds: float = option(
        60, "how late a tick may fire under the 'skip' catch-up policy"
    )
    schedule_catch_up_limit: int = option(
        100, "most missed ticks fired at once under the 'all' catch-up policy"
    )
    scheduler_interval: float = option(1.0, "seconds between two passes of a scheduler")
    schedule_admin_commands: tuple[str, ...] = option(
        (),
        "management commands a schedule made in the admin may run (default: none)",
        accepts=(list, tuple),
    )
    schedule_admin_tasks: tuple[str, ...] = option(
        (),
        "task paths, or modules of tasks, a schedule made in the admin may run (default: none)",
        accepts=(list, tuple),
    )
    schedule_admin_action_limit: int = option(
        100,
        "most schedules one admin action (run now, pause, resume) acts on",
        bounds=(1, 10_000),
    )
    admin_count_limit: int = option(
        10_000,
        "most rows the admin counts for a task list; past it the list says 'more than'",
        bounds=(100, 10_000_000),
    )
    dashboard_refresh_seconds: float = option(
        5, "how often the dashboard refreshes itself (1 to 3600 seconds)", bounds=(1, 3600)
    )
    dashboard_sample_size: int = option(
        5_000,
        "most finished tasks the dashboard reads to compute wait and run time percentiles",
        bounds=(100, 1_000_000),
    )
    admin_action_limit: int = option(
        10_000,
        "most tasks one admin action (retry, cancel, copy, delete) may act on; past it, refused",
        bounds=(1, 1_000_000),
    )
    admin_mask_arguments: tuple[str, ...] = option(
        (),
        "task paths, prefixes ending in '*', or '*' for all, whose arguments the admin never shows",
        accepts=(list, tuple),
    )
    # Retention: how long a finished row is kept before the elected pruner
    # deletes it (docs/operations.md). Seconds or a timedelta; None keeps forever.
    retain_successful: float | None = retention(7, "a SUCCESSFUL task is kept after it finished")
    retain_failed: float | None = retention(30, "a FAILED task is kept after it finished")
    retain_cancelled: float | None = retention(7, "a CANCELLED task is kept after it finished")
    retain_schedule_fires: float | None = retention(30, "a schedule's fire record is kept")
    prune_batch_size: int = option(
        1000, "most rows the pruner deletes in one statement", bounds=(1, 100_000)
    )
    prune_max_rows_per_second: float | None = option(
        5000,
        "most rows the pruner deletes per second, batches included (None: no cap)",
        bounds=(1, 10_000_000),
    )
    # One long transaction anywhere in the database stops VACUUM from removing
    # the dead rows every claim and outcome leaves in the task table; past
    # this age, status, health and the dashboard name it (docs/operations.md).
    vacuum_blocker_warning: float | None = option(
        600,
        "seconds after which a transaction, prepared transaction or replication slot that "
        "holds back VACUUM is reported, on PostgreSQL (None: never)",
        bounds=(1, 30 * DAY),
    )
    prune_vacuum: bool = option(
        True,
        "on PostgreSQL, the pruner runs VACUUM (ANALYZE) on the task table when dead rows "
        "pile up and autovacuum will not run there (off for the server or for the table)",
        zero_allowed=True,
    )
    # Not an option: what parse_options found wrong.
    problems: list[str] = field(default_factory=list)
    # Not an option: what is wrong with single entries of SCHEDULES. Each is that
    # schedule's own error (reported by ``check``, the worker and the admin), not
    # the backend's: one bad schedule must not stop every enqueue.
    schedule_problems: list[str] = field(default_factory=list)


def _accepted(annotation: object) -> tuple[type, ...]:
    """The types a raw setting may have for a field annotated ``annotation``:
    a ``float`` option also takes an ``int``, ``float | None`` also takes None."""
    found: list[type] = []
    for part in typing.get_args(annotation) if isinstance(annotation, UnionType) else (annotation,):
        origin = typing.get_origin(part) or part
        if origin is float:
            found.extend((int, float))
        elif isinstance(origin, type):
            found.append(origin)
    return tuple(found)


def _default_of(item: Field[Any]) -> object:
    if item.default_factory is not MISSING:
        return item.default_factory()
    return item.default


_OPTION_FIELDS = [f for f in fields(Options) if "doc" in f.metadata]

# Name -> (default, allowed types, description), derived from Options. Every
# option is documented there and in docs/configuration.md.
KNOWN_OPTIONS: dict[str, tuple[object, tuple[type, ...], str]] = {
    f.name.upper(): (
        _default_of(f),
        f.metadata["accepts"] or _accepted(f.type),
        f.metadata["doc"],
    )
    for f in _OPTION_FIELDS
}

# Inclusive bounds of options whose useful range is narrower than "positive".
OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    f.name.upper(): f.metadata["bounds"] for f in _OPTION_FIELDS if f.metadata["bounds"]
}

# Options for which 0 means "off" rather than a mistake.
ZERO_ALLOWED = {f.name.upper() for f in _OPTION_FIELDS if f.metadata["zero_allowed"]}


def _positive(name: str, value: object, problems: list[str]) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
        problems.append(f"OPTIONS[{name!r}] must be greater than 0, got {value!r}.")


def parse_options(raw: object, queues: set[str]) -> Options:
    """Read ``OPTIONS`` into :class:`Options`, listing every problem found."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        return Options(problems=[f"OPTIONS must be a dict, got {type(raw).__name__}."])

    values = _read_values(_retention_in_seconds(raw), problems)
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
        problems.extend(check_options(values["worker"]))
    if "embedded" in values:
        problems.extend(parse_embedded(values["embedded"])[1])
    if "admin_mask_arguments" in values:
        values["admin_mask_arguments"] = _parse_mask_arguments(
            values["admin_mask_arguments"], problems
        )
    for name in ("schedule_admin_commands", "schedule_admin_tasks"):
        if name in values:
            values[name] = _parse_names(name.upper(), values[name], problems)
    schedule_problems: list[str] = []
    if "schedules" in values:
        schedule_problems = spec_problems(values["schedules"], settings.TIME_ZONE or "UTC")

    problems.extend(_environment_problems(values, queues))
    return Options(**values, problems=problems, schedule_problems=schedule_problems)


def _retention_in_seconds(raw: dict[Any, Any]) -> dict[Any, Any]:
    """``raw`` with each retention given as a timedelta turned into seconds, so
    the bounds check sees one unit."""
    return {
        name: value.total_seconds()
        if name in RETENTION_OPTIONS and isinstance(value, timedelta)
        else value
        for name, value in raw.items()
    }


def _read_values(raw: dict[Any, Any], problems: list[str]) -> dict[str, Any]:
    """Each known option's raw value, by field name, if its type and range are right."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in KNOWN_OPTIONS:
            hint = did_you_mean(name, KNOWN_OPTIONS)
            problems.append(f"Unknown option OPTIONS[{name!r}].{hint}")
            continue
        _default, types, _doc = KNOWN_OPTIONS[name]
        # bool is an int: accepted only where the option is a bool.
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            expected = " or ".join("None" if t is NoneType else t.__name__ for t in types)
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
    return values


def _environment_problems(values: dict[str, Any], queues: set[str]) -> list[str]:
    """What is wrong with the options against the rest of the project's settings."""
    problems: list[str] = []
    database = values.get("database", Options.database)
    if database not in settings.DATABASES:
        problems.append(
            f"OPTIONS['DATABASE'] names {database!r}, which is not in DATABASES "
            f"({', '.join(sorted(settings.DATABASES))})."
        )
    problems.extend(_listen_problems(values, database))
    problems.extend(
        f"Queue name {name!r} in QUEUES must be a non-empty string of at most "
        f"{MAX_NAME_LENGTH} characters."
        for name in sorted(queues, key=str)
        if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH
    )
    token = values.get("metrics_token", "")
    if token and len(token) < MIN_TOKEN_LENGTH:
        problems.append(
            f"OPTIONS['METRICS_TOKEN'] must be at least {MIN_TOKEN_LENGTH} characters (it "
            "stands in for a login); generate one, for example with "
            "python -c 'import secrets; print(secrets.token_urlsafe())'."
        )
    if not getattr(settings, "USE_TZ", True):
        problems.append(
            "offload needs USE_TZ = True: task times are compared with the database's clock in UTC."
        )
    return problems


def _listen_problems(values: dict[str, Any], database: str) -> list[str]:
    listen = values.get("listen_database")
    if listen is None:
        return []
    if listen not in settings.DATABASES:
        return [
            f"OPTIONS['LISTEN_DATABASE'] names {listen!r}, which is not in DATABASES "
            f"({', '.join(sorted(settings.DATABASES))})."
        ]
    engines = {
        alias: str(settings.DATABASES.get(alias, {}).get("ENGINE", ""))
        for alias in (listen, database)
    }
    if not all("postgresql" in engine for engine in engines.values()):
        return [
            "OPTIONS['LISTEN_DATABASE'] is for PostgreSQL (LISTEN/NOTIFY): both it "
            f"({listen!r}) and the tasks' database ({database!r}) must be PostgreSQL."
        ]
    return []


def _parse_mask_arguments(raw: list[Any] | tuple[Any, ...], problems: list[str]) -> tuple[str, ...]:
    if all(isinstance(item, str) and item for item in raw):
        return tuple(raw)
    problems.append(
        "OPTIONS['ADMIN_MASK_ARGUMENTS'] must list task paths, prefixes ending in '*' "
        f"or '*', got {raw!r}."
    )
    return ()


def _parse_names(
    name: str, raw: list[Any] | tuple[Any, ...], problems: list[str]
) -> tuple[str, ...]:
    """An allow-list of names (non-empty strings, no surrounding spaces), as a tuple."""
    bad = [item for item in raw if not isinstance(item, str) or not item or item != item.strip()]
    if bad:
        problems.append(
            f"OPTIONS[{name!r}] must be a list of names (non-empty strings, no surrounding "
            f"spaces), got {bad[0]!r}."
        )
        return ()
    return tuple(raw)


def _parse_retry(raw: dict[str, Any], problems: list[str]) -> RetryPolicy:
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in RETRY_KEYS:
            hint = did_you_mean(key, RETRY_KEYS)
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
