"""Shared fixtures, and honest skips: without a database server, the tests that need
it are skipped with the reason, never passed silently."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from django.tasks import task_backends

from offload.backend import DatabaseBackend

ROOT = Path(__file__).resolve().parent.parent
DB_TIERS = ("integration", "acceptance", "browser")


def _server_problem() -> str | None:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return None
    host, port = db["HOST"], int(db["PORT"])
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"{os.environ.get('OFFLOAD_TEST_DB')} server not reachable at {host}:{port} ({exc})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    # A suite started from a background job of a non-interactive shell (a CI
    # script, nohup) inherits SIGINT ignored, and every process it starts
    # would too: the tests that press Ctrl-C on a worker or a server would
    # then fail for a reason of the launch, not of the code. A handled
    # signal is reset to the default at exec, an ignored one is not.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header() -> str:
    return f"offload test database: {os.environ.get('OFFLOAD_TEST_DB', 'sqlite')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = _server_problem()
    if problem and os.environ.get("CI") == "true":
        # In CI the servers were started on purpose: skipping would hide that
        # a database was never tested.
        pytest.exit(f"{problem}; CI needs every database", returncode=3)
    for item in items:
        tier = Path(str(item.path)).relative_to(ROOT / "tests").parts[0]
        if tier in DB_TIERS:
            if problem:
                item.add_marker(pytest.mark.skip(reason=problem))
            # Workers run in autocommit, as in production: these tests commit
            # for real and the tables are flushed afterwards.
            item.add_marker(pytest.mark.django_db(transaction=True))
        if tier == "acceptance":
            item.add_marker(pytest.mark.acceptance)


@pytest.fixture
def backend() -> DatabaseBackend:
    found = task_backends["default"]
    assert isinstance(found, DatabaseBackend)
    return found


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for a process that must open this test run's database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        OFFLOAD_TEST_DB=os.environ.get("OFFLOAD_TEST_DB", "sqlite"),
        OFFLOAD_TEST_DB_NAME=str(connection.settings_dict["NAME"]),
        OFFLOAD_TEST_QUEUE_DB_NAME=str(connections["queue"].settings_dict["NAME"]),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    return env


@pytest.fixture
def start_process(child_env: dict[str, str]) -> Iterator[object]:
    """Start real processes; kill any that are still running when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def start(
        *args: str,
        options: dict[str, object] | None = None,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> subprocess.Popen[str]:
        """``python *args``, after ``prefix`` (a command that execs it: ``ip netns exec``)."""
        env = {**child_env, **(env or {})}
        if options is not None:
            # Extra backend OPTIONS for this worker only (see tests/settings.py).
            env["OFFLOAD_TEST_OPTIONS"] = json.dumps(options)
        proc = subprocess.Popen(
            [*prefix, sys.executable, *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group, so the teardown below can kill everything
            # it started: under --reload the supervisor is the reloader's child,
            # and one left behind by a failed test would take the next tests' tasks.
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
