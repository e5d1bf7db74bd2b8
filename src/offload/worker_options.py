"""The worker's settings, in one table: each has a flag, an environment variable and
a key of ``OPTIONS["WORKER"]``.

The first of these that is set wins: the command-line flag, then the environment
variable (handy in containers), then ``TASKS[alias]["OPTIONS"]["WORKER"]``, then
the default. Every value goes through the same parser whatever its source, so a
bad one gets the same clear error naming where it came from. ``OPTIONS["WORKER"]``
is also checked when the backend is built, so ``manage.py check`` reports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from offload.exceptions import BackendMisconfigured
from offload.limits import MAX_NAME_LENGTH, MAX_WORKER_NAME_LENGTH
from offload.suggest import did_you_mean


def _int(low: int, high: int | None = None) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError("expected a whole number")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("expected a whole number") from None
        if not isinstance(value, int):
            raise ValueError("expected a whole number")
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("expected a number of seconds") from None
    if not isinstance(value, (int, float)) or value != value or value < 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return float(value)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false (1/0, yes/no, on/off)")


def _names(value: object) -> tuple[str, ...]:
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError("expected a comma-separated string or a list of queue names")
    names = tuple(str(item).strip() for item in items if str(item).strip())
    if not names:
        raise ValueError("needs at least one queue name, e.g. default,emails")
    too_long = [n for n in names if len(n) > MAX_NAME_LENGTH]
    if too_long:
        raise ValueError(f"queue name {too_long[0]!r} is longer than {MAX_NAME_LENGTH} characters")
    return names


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 2**20, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def _size(value: object) -> int | None:
    """Bytes from ``512M``, ``1.5G``, ``800MiB`` or a plain number of MiB; 0 means no limit."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512M or 2G")
    if isinstance(value, (int, float)):
        value = str(value)
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a size such as 512M or 2G (a plain number means MiB)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return size or None


def _limit(value: object) -> int | None:
    return _int(0)(value) or None  # 0: no limit


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ValueError(f"expected one of {', '.join(choices)}")

    return parse


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty name")
    if len(value) > MAX_WORKER_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_WORKER_NAME_LENGTH} characters")
    return value.strip()


def _address(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or " " in value.strip():
        raise ValueError("expected a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0")
    return value.strip()


def default_processes() -> int:
    """The CPUs this process may run on (a container's limit, not the host's count)."""
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return max(1, count or 1)


@dataclass(frozen=True)
class Setting:
    field: str
    flag: str
    env: str
    key: str | None  # in OPTIONS["WORKER"]; None: not settable there
    parse: Callable[[object], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("backend", "--backend", "OFFLOAD_BACKEND", None, _name,
            "TASKS alias whose tasks to run, or several, comma-separated, each with "
            "its own task processes (default: default)"),
    Setting("queues", "--queues", "OFFLOAD_QUEUES", "QUEUES", _names,
            "comma-separated queues to take tasks from (default: all)"),
    Setting("exclude_queues", "--exclude-queues", "OFFLOAD_EXCLUDE_QUEUES", "EXCLUDE_QUEUES",
            _names, "comma-separated queues never to take tasks from"),
    Setting("cpu_bound_queues", "--cpu-bound-queues", "OFFLOAD_CPU_BOUND_QUEUES",
            "CPU_BOUND_QUEUES", _names,
            "comma-separated queues whose tasks are CPU-bound: one at a time per process"),
    Setting("processes", "--processes", "OFFLOAD_PROCESSES", "PROCESSES", _int(1, 256),
            "task processes to run (default: the number of CPUs)"),
    Setting("threads", "--threads", "OFFLOAD_THREADS", "THREADS", _int(1, 1024),
            "sync tasks each process runs at once, on threads (default: 4)"),
    Setting("async_concurrency", "--async-concurrency", "OFFLOAD_ASYNC_CONCURRENCY",
            "ASYNC_CONCURRENCY", _int(1, 100_000),
            "async def tasks each process runs at once on its event loop (default: 100)"),
    Setting("burst", "--burst", "OFFLOAD_BURST", "BURST", _bool,
            "run every task that is due, then exit"),
    Setting("max_tasks_per_child", "--max-tasks-per-child", "OFFLOAD_MAX_TASKS_PER_CHILD",
            "MAX_TASKS_PER_CHILD", _limit,
            "replace a process after it has run this many tasks (default: 0, no limit)"),
    Setting("max_memory_per_child", "--max-memory-per-child", "OFFLOAD_MAX_MEMORY_PER_CHILD",
            "MAX_MEMORY_PER_CHILD", _size,
            "replace a process once its memory passes this size, e.g. 512M (default: no limit)"),
    Setting("shutdown_timeout", "--shutdown-timeout", "OFFLOAD_SHUTDOWN_TIMEOUT",
            "SHUTDOWN_TIMEOUT", _seconds,
            "seconds running tasks get to finish after SIGTERM before they are given back "
            "(default: 25)"),
    Setting("name", "--name", "OFFLOAD_NAME", "NAME", _name,
            "worker name shown in logs, results and process titles (default: the host name)"),
    Setting("reload", "--reload", "OFFLOAD_RELOAD", "RELOAD", _bool,
            "restart when code changes, with Django's autoreloader (default: on when DEBUG)"),
    Setting("verbosity", "--verbosity", "OFFLOAD_VERBOSITY", "VERBOSITY", _int(0, 3),
            "0 warnings only, 1 start-up and one line per task, 2 debug, 3 debug and SQL"),
    Setting("scheduler", "--scheduler", "OFFLOAD_SCHEDULER", "SCHEDULER", _bool,
            "fire due schedules from this worker; every worker may, each tick fires once "
            "(default: on, off with --burst)"),
    Setting("log_format", "--log-format", "OFFLOAD_LOG_FORMAT", "LOG_FORMAT",
            _choice("text", "json"), "text for people, json for log collectors (default: text)"),
    Setting("metrics_port", "--metrics-port", "OFFLOAD_METRICS_PORT", "METRICS_PORT",
            _int(1, 65535),
            "serve the task processes' counters and histograms for Prometheus on this port, "
            "from the supervisor (default: off; needs the metrics extra)"),
    Setting("metrics_address", "--metrics-address", "OFFLOAD_METRICS_ADDRESS", "METRICS_ADDRESS",
            _address, "address the metrics port listens on (default: 127.0.0.1)"),
)  # fmt: skip
BY_KEY = {s.key: s for s in SETTINGS if s.key}


@dataclass(frozen=True)
class WorkerSettings:
    backend: str = "default"
    queues: tuple[str, ...] | None = None
    exclude_queues: tuple[str, ...] = ()
    cpu_bound_queues: tuple[str, ...] = ()
    processes: int = 0  # 0: default_processes(), resolved in resolve()
    threads: int = 4
    async_concurrency: int = 100
    burst: bool = False
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None
    shutdown_timeout: float = 25.0
    name: str | None = None
    reload: bool = False
    verbosity: int = 1
    log_format: str = "text"
    scheduler: bool = True
    metrics_port: int | None = None  # None: no metrics port
    metrics_address: str = "127.0.0.1"


def check_options(raw: object) -> list[str]:
    """Problems in ``OPTIONS["WORKER"]``, for the backend's checks."""
    if not isinstance(raw, dict):
        return [f"OPTIONS['WORKER'] must be a dict, got {type(raw).__name__}."]
    problems = []
    for key, value in raw.items():
        setting = BY_KEY.get(key)
        if setting is None:
            hint = did_you_mean(key, BY_KEY)
            problems.append(f"Unknown option OPTIONS['WORKER'][{key!r}].{hint}")
            continue
        try:
            setting.parse(value)
        except ValueError as exc:
            problems.append(f"OPTIONS['WORKER'][{key!r}] = {value!r}: {exc}.")
    return problems


def resolve(
    flags: Mapping[str, object],
    environ: Mapping[str, str],
    options_for: Callable[[str], Mapping[str, object]],
    *,
    debug: bool,
    default_verbosity: int = 1,
) -> WorkerSettings:
    """Build the worker's settings: flag, then environment, then OPTIONS, then default.

    ``flags`` maps field names to what the command line gave (None: not given);
    ``options_for(backend)`` returns that backend's ``OPTIONS["WORKER"]``.
    """
    values: dict[str, Any] = {}
    by_field = {s.field: s for s in SETTINGS}

    def pick(setting: Setting, options: Mapping[str, object]) -> None:
        sources: list[tuple[str, object]] = [
            (setting.flag, flags.get(setting.field)),
            (setting.env, environ.get(setting.env)),
        ]
        if setting.key:
            sources.append((f"OPTIONS['WORKER'][{setting.key!r}]", options.get(setting.key)))
        for where, value in sources:
            if value is None:
                continue
            try:
                values[setting.field] = setting.parse(value)
            except ValueError as exc:
                raise BackendMisconfigured(f"{where} = {value!r}: {exc}.") from None
            return

    pick(by_field["backend"], {})
    backend = values.get("backend", "default")
    options = options_for(backend)
    for setting in SETTINGS:
        if setting.field != "backend":
            pick(setting, options)
    values.setdefault("processes", default_processes())
    values.setdefault("reload", debug)
    values.setdefault("verbosity", default_verbosity)
    values.setdefault("scheduler", not values.get("burst", False))
    known = {f.name for f in fields(WorkerSettings)}
    return WorkerSettings(**{k: v for k, v in values.items() if k in known})


def resolve_all(
    flags: Mapping[str, object],
    environ: Mapping[str, str],
    options_for: Callable[[str], Mapping[str, object]],
    *,
    debug: bool,
    default_verbosity: int = 1,
) -> list[WorkerSettings]:
    """One ``WorkerSettings`` per alias of ``--backend a,b``, in that order.

    Each alias reads its own ``OPTIONS["WORKER"]``; flags and environment
    variables apply to every alias alike. What only the supervisor uses (the
    verbosity, the log format, the name, the metrics port, reload and burst)
    is taken from the first alias.
    """
    setting = next(s for s in SETTINGS if s.field == "backend")
    raw, where = flags.get("backend"), setting.flag
    if raw is None:
        raw, where = environ.get(setting.env), setting.env
    if raw is None:
        raw = "default"
    aliases = [part.strip() for part in str(raw).split(",")]
    if not all(aliases):
        raise BackendMisconfigured(f"{where} = {raw!r}: an empty alias between commas.")
    return [
        resolve({**flags, "backend": alias}, environ, options_for,
                debug=debug, default_verbosity=default_verbosity)
        for alias in dict.fromkeys(aliases)
    ]  # fmt: skip
