"""Helpers shared by the test tiers."""

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from offload.failures import AttemptEnd
from offload.models import TaskRecord
from offload.worker import Worker, WorkerConfig, WorkerStats


def drain(**kwargs: object) -> WorkerStats:
    """Run an in-process worker until no task is due."""
    return Worker(WorkerConfig("default", **kwargs)).run(burst=True)  # type: ignore[arg-type]


@contextmanager
def override_options(**options: object) -> Iterator[None]:
    """The default backend with these OPTIONS on top of the test settings' ones."""
    default = {**settings.TASKS["default"]}
    default["OPTIONS"] = {**default.get("OPTIONS", {}), **options}
    with override_settings(TASKS={**settings.TASKS, "default": default}):
        yield


def row_count() -> int:
    return TaskRecord.objects.count()


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class RunningWorker:
    worker: Worker
    thread: threading.Thread
    error: BaseException | None = None


@contextmanager
def running_worker(*, burst: bool = False, **options: Any) -> Iterator[RunningWorker]:
    """A worker running in a thread for the block; stopped and joined after it.

    Whatever the worker raised is raised again here, so a worker that died
    cannot pass for one that finished.
    """
    running = RunningWorker(Worker(WorkerConfig("default", **options)), threading.Thread())

    def work() -> None:
        try:
            running.worker.run(burst=burst)
        except BaseException as exc:
            running.error = exc
        finally:
            connections.close_all()  # this thread's connections, not the test's

    running.thread = threading.Thread(target=work)
    running.thread.start()
    try:
        yield running
    finally:
        running.worker.stop()
        running.thread.join(timeout=30)
    assert not running.thread.is_alive(), "the worker did not stop"
    if running.error is not None:
        raise running.error


def run_offload(*argv: str) -> tuple[int, str]:
    """The exit code and the output of ``manage.py offload *argv``."""
    out = io.StringIO()
    try:
        call_command("offload", *argv, stdout=out, stderr=io.StringIO())
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


# An attempt's end that a lost lease records (the store's tests of keyed tasks).
LOST = AttemptEnd('{"exception_class_path": "x.Lost", "traceback": ""}')


def statuses(results: list[Any]) -> list[str]:
    """The stored state of each task result, in order."""
    found = dict(TaskRecord.objects.values_list("pk", "status"))
    return [found[int(result.id)] for result in results]


def claim_all(backend: Any) -> list[Any]:
    """Claim up to 100 due tasks of ``backend`` for a worker "w1"."""
    return list(backend.store.claim("w1", limit=100, lease_seconds=60))
