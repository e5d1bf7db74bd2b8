"""The backend's ``OPTIONS``: parsed and validated once, when the backend is built.

Problems are collected rather than raised, so ``manage.py check`` can report all
of them at once; using a misconfigured backend raises ``BackendMisconfigured``.
"""

import difflib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

# Name -> (default, allowed types, description). Every option is documented here
# and in docs/configuration.md.
KNOWN_OPTIONS: dict[str, tuple[object, tuple[type, ...], str]] = {
    "DATABASE": ("default", (str,), "database alias that holds the tasks tables"),
    "MAX_PAYLOAD_BYTES": (1024 * 1024, (int,), "largest args + kwargs accepted, as JSON bytes"),
    "LEASE_SECONDS": (300, (int, float), "how long a claim is held before it may be rescued"),
    "CLAIM_BATCH_SIZE": (
        10,
        (int,),
        "most tasks a worker claims in one statement (fewer when its tasks are slow)",
    ),
    "POLL_INTERVAL": (
        1.0,
        (int, float),
        "most seconds an idle worker waits before looking for due tasks again",
    ),
    "WORKER": ({}, (dict,), "worker settings (see offload.worker_options), like its flags"),
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
OPTION_BOUNDS: dict[str, tuple[int, int]] = {
    "ADMIN_COUNT_LIMIT": (100, 10_000_000),
    "DASHBOARD_REFRESH_SECONDS": (1, 3600),
    "DASHBOARD_SAMPLE_SIZE": (100, 1_000_000),
}

MAX_NAME_LENGTH = 100  # queue names and worker names: the width of their columns


@dataclass(frozen=True)
class Options:
    database: str = "default"
    max_payload_bytes: int = 1024 * 1024
    lease_seconds: float = 300
    claim_batch_size: int = 10
    poll_interval: float = 1.0
    worker: dict[str, Any] = field(default_factory=dict)
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
        _positive(name, value, problems)
        if name in OPTION_BOUNDS:
            low, high = OPTION_BOUNDS[name]
            if isinstance(value, (int, float)) and not low <= value <= high:
                problems.append(
                    f"OPTIONS[{name!r}] must be between {low:,} and {high:,}, got {value!r}."
                )
                continue
        values[name.lower()] = value

    if "worker" in values:
        # Imported here: worker_options builds on this module.
        from offload.worker_options import check_options

        problems.extend(check_options(values["worker"]))

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
