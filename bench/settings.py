"""Django settings for the benchmark. ``OFFLOAD_BENCH_DB`` picks the database.

Environment variables (the runner, ``python -m bench.run``, sets the first three):

* ``OFFLOAD_BENCH_DB``: sqlite (default), postgres or mariadb.
* ``OFFLOAD_BENCH_SQLITE_DIR``: directory of the SQLite file (default: the temp dir).
* ``OFFLOAD_BENCH_OPTIONS``: JSON object merged into the backend's ``OPTIONS``
  (default: none, so offload's own defaults are what gets measured).
* ``OFFLOAD_BENCH_DB_NAME``: the database's name (default ``offload_bench``).
* ``OFFLOAD_BENCH_CONN_MAX_AGE``: ``CONN_MAX_AGE`` in seconds, or ``none`` for
  persistent connections (default 0, Django's default).
* Server connection details, as for the test suite:
  ``OFFLOAD_PG_HOST/PORT/USER/PASSWORD`` and ``OFFLOAD_MARIADB_HOST/PORT/USER/PASSWORD``.

``TASKS["peer"]`` is django-tasks-db, which the benchmark runs on the same
workloads to compare offload with.

PostgreSQL and MariaDB use a database of the benchmark's own, ``offload_bench``
(``OFFLOAD_BENCH_DB_NAME`` names another, so two benchmarks on one server do not
drop each other's), which the runner drops and creates again before each run
and drops afterwards.
"""

import json
import os
import tempfile
from pathlib import Path

DB = os.environ.get("OFFLOAD_BENCH_DB", "sqlite")
# A run that must not meet scripts/bench's database (bench.soak) names its own.
BENCH_DB_NAME = os.environ.get("OFFLOAD_BENCH_DB_NAME", "offload_bench")
SQLITE_PATH = (
    Path(os.environ.get("OFFLOAD_BENCH_SQLITE_DIR") or tempfile.gettempdir())
    / f"{BENCH_DB_NAME}.sqlite3"
)


# The pragmas of every SQLite connection the benchmark measures: Django's (for
# offload and django-tasks-db), huey's (bench.huey_app) and the bare commit's.
SQLITE_INIT_COMMAND = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"


def _conn_max_age() -> int | None:
    raw = os.environ.get("OFFLOAD_BENCH_CONN_MAX_AGE", "0").strip()
    return None if raw.lower() == "none" else int(raw)


def _database() -> dict[str, object]:
    env = os.environ.get
    common: dict[str, object] = {"CONN_MAX_AGE": _conn_max_age()}
    if DB == "sqlite":
        return {
            **common,
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            # WAL, as README tells every SQLite user to configure: without it
            # the enqueuer and the worker block each other.
            "OPTIONS": {
                "init_command": SQLITE_INIT_COMMAND,
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    if DB == "postgres":
        return {
            **common,
            "ENGINE": "django.db.backends.postgresql",
            "HOST": env("OFFLOAD_PG_HOST", "127.0.0.1"),
            "PORT": env("OFFLOAD_PG_PORT", "5432"),
            "USER": env("OFFLOAD_PG_USER", "postgres"),
            "PASSWORD": env("OFFLOAD_PG_PASSWORD", ""),
            "NAME": BENCH_DB_NAME,
        }
    if DB == "mariadb":
        return {
            **common,
            "ENGINE": "django.db.backends.mysql",
            "HOST": env("OFFLOAD_MARIADB_HOST", "127.0.0.1"),
            "PORT": env("OFFLOAD_MARIADB_PORT", "3306"),
            "USER": env("OFFLOAD_MARIADB_USER", "root"),
            "PASSWORD": env("OFFLOAD_MARIADB_PASSWORD", ""),
            "NAME": BENCH_DB_NAME,
            "OPTIONS": {"charset": "utf8mb4"},
        }
    raise RuntimeError(f"OFFLOAD_BENCH_DB must be sqlite, postgres or mariadb, not {DB!r}")


SECRET_KEY = "offload-bench-only"
DEBUG = False  # with DEBUG, Django would keep every query in memory
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": _database()}
INSTALLED_APPS = ["django.contrib.contenttypes", "offload", "django_tasks_db", "bench"]
TASKS = {
    "default": {
        "BACKEND": "offload.backend.DatabaseBackend",
        "OPTIONS": json.loads(os.environ.get("OFFLOAD_BENCH_OPTIONS") or "{}"),
    },
    # The system offload is compared with, on the same database, at its defaults.
    "peer": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Quiet: per-task INFO lines (offload's, and django.tasks' own) would cost the
# worker time and flood the output. Warnings and errors still reach stderr,
# since a database error or a dropped outcome during a run is exactly what the
# benchmark must not hide. The level is on the handler, not only on the root
# logger: Django's "django" logger is at INFO and its records propagate to the
# root's handlers whatever the root logger's own level.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
