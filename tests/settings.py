"""Test settings. ``OFFLOAD_TEST_DB`` picks the database: sqlite (default), postgres, mariadb.

Connection details come from the environment so the same suite runs anywhere:
``OFFLOAD_PG_HOST/PORT/USER/PASSWORD/NAME`` and ``OFFLOAD_MARIADB_HOST/PORT/USER/PASSWORD/NAME``.
"""

import json
import os
import tempfile
from pathlib import Path

DB = os.environ.get("OFFLOAD_TEST_DB", "sqlite")
# Acceptance tests start workers in other processes; they must open the very
# database the test run created, so its name is passed down explicitly.
CHILD_DB_NAME = os.environ.get("OFFLOAD_TEST_DB_NAME")
# And the second one ("queue"), for a worker that serves both.
CHILD_QUEUE_DB_NAME = os.environ.get("OFFLOAD_TEST_QUEUE_DB_NAME")

SQLITE_DIR = Path(os.environ.get("OFFLOAD_SQLITE_DIR", tempfile.gettempdir()))


def _database(suffix: str = "") -> dict[str, object]:
    child_name = CHILD_QUEUE_DB_NAME if suffix else CHILD_DB_NAME
    if DB == "sqlite":
        path = str(SQLITE_DIR / f"offload-test-{os.getpid()}{suffix}.sqlite3")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": child_name or path,
            # A file, not :memory:, so worker processes can share it.
            "TEST": {"NAME": path},
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                # Seconds a statement waits for another writer's lock; the
                # outage test shortens it to see a worker survive "locked".
                "timeout": float(os.environ.get("OFFLOAD_SQLITE_TIMEOUT", "30")),
            },
        }
    if DB == "postgres":
        env = os.environ.get
        return {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": env("OFFLOAD_PG_HOST", "127.0.0.1"),
            "PORT": env("OFFLOAD_PG_PORT", "5432"),
            "USER": env("OFFLOAD_PG_USER", "postgres"),
            "PASSWORD": env("OFFLOAD_PG_PASSWORD", ""),
            "NAME": child_name or env("OFFLOAD_PG_NAME", "test"),
            "TEST": {"NAME": f"test_offload_{os.getpid()}{suffix}"},
            # A worker started with OFFLOAD_TEST_PG_POOL=1 runs in a project
            # that uses Django's connection pool (psycopg_pool).
            "OPTIONS": {"pool": True} if env("OFFLOAD_TEST_PG_POOL") else {},
        }
    if DB == "mariadb":
        env = os.environ.get
        return {
            "ENGINE": "django.db.backends.mysql",
            "HOST": env("OFFLOAD_MARIADB_HOST", "127.0.0.1"),
            "PORT": env("OFFLOAD_MARIADB_PORT", "3306"),
            "USER": env("OFFLOAD_MARIADB_USER", "root"),
            "PASSWORD": env("OFFLOAD_MARIADB_PASSWORD", ""),
            "NAME": child_name or env("OFFLOAD_MARIADB_NAME", "test"),
            "TEST": {"NAME": f"test_offload_{os.getpid()}{suffix}", "CHARSET": "utf8mb4"},
            "OPTIONS": {"charset": "utf8mb4"},
        }
    raise RuntimeError(f"OFFLOAD_TEST_DB must be sqlite, postgres or mariadb, not {DB!r}")


SECRET_KEY = "offload-tests-only"
# Test users' passwords need no strength, and the default hasher spends most of
# a second of CPU on each: every admin test logs in.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# On for a worker started as a new project runs it (startproject sets DEBUG = True).
DEBUG = os.environ.get("OFFLOAD_TEST_DEBUG") == "1"
USE_TZ = True
# The embedded worker's tests call real servers on the loopback.
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
TIME_ZONE = "UTC"
# "queue" is a second database of the same engine, for a backend whose
# OPTIONS["DATABASE"] puts the tasks tables apart from the project's data.
DATABASES = {"default": _database(), "queue": _database("_queue")}
# A worker started behind PgBouncer (tests/acceptance/test_pgbouncer.py) reaches
# the tasks through the pooler's port (OFFLOAD_PG_PORT) and LISTENs on this
# direct one.
if DB == "postgres" and os.environ.get("OFFLOAD_TEST_PG_DIRECT_PORT"):
    DATABASES["direct"] = {**_database(), "PORT": os.environ["OFFLOAD_TEST_PG_DIRECT_PORT"]}
DATABASE_ROUTERS = ["offload.routers.OffloadRouter"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "offload",
    "tests.app.apps.TestAppConfig",
]
# The admin, for the tests of offload's admin pages.
ROOT_URLCONF = "tests.urls"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# Acceptance tests that need other timings (short leases, fast retries) pass
# them to the worker processes they start as JSON in OFFLOAD_TEST_OPTIONS.
EXTRA_OPTIONS = json.loads(os.environ.get("OFFLOAD_TEST_OPTIONS", "{}"))
TASKS = {
    "default": {
        "BACKEND": "offload.backend.DatabaseBackend",
        "QUEUES": ["default", "emails", "reports"],
        "OPTIONS": {
            "POLL_INTERVAL": 0.05,
            # What the tests' schedules made in the admin (or through the ORM) run.
            "SCHEDULE_ADMIN_COMMANDS": ["greet"],
            "SCHEDULE_ADMIN_TASKS": ["tests.app.tasks"],
            **EXTRA_OPTIONS,
        },
    },
    "separate": {
        "BACKEND": "offload.backend.DatabaseBackend",
        "OPTIONS": {
            "DATABASE": "queue",
            "POLL_INTERVAL": 0.05,
            "SCHEDULE_ADMIN_TASKS": ["tests.app.tasks"],
        },
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The admin's pages (tests/integration/test_admin*.py, tests/browser/): only
# admin.site.urls is routed, as in a project that adds nothing for offload.
ROOT_URLCONF = "tests.urls"
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"offload": {"handlers": ["console"], "level": "WARNING"}},
}
