"""Tasks the test suite enqueues and workers run."""

import asyncio
import os

from django.db import connection
from django.tasks import task
from django.tasks.base import TaskContext

from offload.task import task as offload_task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@task
def noop() -> None:
    return None


@task(queue_name="emails")
def send_email(to: str) -> str:
    return f"sent to {to}"


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task
def return_non_json() -> object:
    return {1, 2, 3}


@task(takes_context=True)
def with_context(context: TaskContext, label: str) -> dict[str, object]:
    result = context.task_result
    return {
        "label": label,
        "attempt": context.attempt,
        "id": result.id,
        "status": str(result.status),
        "worker_ids": result.worker_ids,
    }


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


@task
def record_run(marker: str) -> dict[str, object]:
    """Leave a trace of each execution in the database, for exactly-once checks."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO offload_tests_run (marker, pid) VALUES (%s, %s)", [marker, os.getpid()]
        )
    return {"marker": marker, "pid": os.getpid()}


def not_a_task() -> None:
    """A plain function: a stored row naming it must never run it."""


@task
def sleep_then_return(seconds: float, value: object) -> object:
    import time

    time.sleep(seconds)
    return value


@task
def interrupt() -> None:
    """Ctrl-C arriving while the task runs, in a worker without signal handlers."""
    raise KeyboardInterrupt


@task
async def async_sleep(seconds: float, value: object) -> object:
    await asyncio.sleep(seconds)
    return value


@task(takes_context=True)
def crash_first_attempt(context: TaskContext, value: object) -> object:
    """Kill the whole worker process on the first attempt, as a segfault would."""
    if context.attempt == 1:
        os._exit(3)
    return value


@task
def mark_then_sleep(marker: str, seconds: float) -> str:
    """Leave a trace as soon as the task really runs, then take its time."""
    import time

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO offload_tests_run (marker, pid) VALUES (%s, %s)", [marker, os.getpid()]
        )
    time.sleep(seconds)
    return marker


@offload_task(max_attempts=4, retry_on=(ConnectionError,), backoff="fixed", retry_delay=0)
def flaky(fail_times: int, marker: str) -> int:
    """Raise ConnectionError on the first ``fail_times`` attempts, then succeed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO offload_tests_run (marker, pid) VALUES (%s, %s)", [marker, os.getpid()]
        )
        cursor.execute("SELECT COUNT(*) FROM offload_tests_run WHERE marker = %s", [marker])
        runs = cursor.fetchone()[0]
    if runs <= fail_times:
        raise ConnectionError(f"attempt {runs} fails on purpose")
    return int(runs)


@offload_task(max_attempts=3, retry_on=(Exception,), dont_retry_on=(ValueError,), retry_delay=0)
def fails_with(kind: str) -> None:
    raise {"value": ValueError, "key": KeyError}[kind](kind)


@offload_task(timeout=30, max_attempts=2)
def limited() -> str:
    return "ok"


@task(takes_context=True)
def attempts_seen(context: TaskContext, marker: str) -> int:
    """Record context.attempt, then crash the process on the first two attempts."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO offload_tests_run (marker, pid) VALUES (%s, %s)",
            [f"{marker}:{context.attempt}", os.getpid()],
        )
    if context.attempt < 3:
        os._exit(4)
    return int(context.attempt)


@task(takes_context=True)
def wait_for_cancel(context: TaskContext, seconds: float) -> str:
    """Check for cancellation between steps, as a long task should."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        context.raise_if_cancelled()  # type: ignore[attr-defined]
        time.sleep(0.02)
    return "never cancelled"


@offload_task(max_attempts=3)
def segfault() -> None:
    """Crash the interpreter the way a broken C extension does."""
    import ctypes

    ctypes.string_at(0)


@offload_task(max_attempts=3)
def hard_exit() -> None:
    os._exit(13)


@offload_task(max_attempts=3)
def memory_hog() -> None:
    """Grab memory, then die as the kernel's OOM killer would make it die."""
    import signal

    hoard = bytearray(200 * 1024 * 1024)
    hoard[::4096] = b"x" * len(hoard[::4096])
    os.kill(os.getpid(), signal.SIGKILL)


@offload_task(timeout=2, max_attempts=1)
def spin() -> None:
    """A pure-Python loop that never ends."""
    n = 0
    while True:
        n += 1


@offload_task(timeout=2, max_attempts=1)
def block() -> None:
    """A call that blocks far longer than its timeout."""
    import time

    time.sleep(600)


_LEAKED: list[bytearray] = []


@task
def leak(megabytes: int) -> int:
    """Keep memory after returning, as a leaking library would."""
    chunk = bytearray(megabytes * 1024 * 1024)
    chunk[::4096] = b"x" * len(chunk[::4096])
    _LEAKED.append(chunk)
    return len(_LEAKED)


@task(takes_context=True)
def slow_first_attempt(context: TaskContext, marker: str) -> int:
    """Leave a trace, then hang on the first attempt only (a worker to lose)."""
    import time

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO offload_tests_run (marker, pid) VALUES (%s, %s)", [marker, os.getpid()]
        )
    if context.attempt == 1:
        time.sleep(120)
    return int(context.attempt)


@task(takes_context=True)
def report_steps(context: TaskContext, steps: int, pause: float, message: str = "step") -> int:
    """Report progress after each of ``steps`` steps of ``pause`` seconds."""
    import time

    for step in range(1, steps + 1):
        time.sleep(pause)
        context.report_progress(step, steps, f"{message} {step}")  # type: ignore[attr-defined]
    return steps


@task(takes_context=True)
async def async_report_steps(context: TaskContext, steps: int, pause: float) -> int:
    """``report_steps`` as an ``async def``: the same call, never awaited."""
    for step in range(1, steps + 1):
        await asyncio.sleep(pause)
        context.report_progress(step, steps, f"async step {step}")  # type: ignore[attr-defined]
    return steps


@task(takes_context=True)
def report_bad_progress(context: TaskContext) -> None:
    """Report more done than there is to do."""
    context.report_progress(5, 3)  # type: ignore[attr-defined]


@task
def return_unstorable(kind: str, depth: int = 0) -> object:
    """Returns a value no database would store as it is (built here: as an
    argument it would be refused at enqueue)."""
    if kind == "nested":
        value: object = "leaf"
        for _ in range(depth):
            value = [value]
        return value
    return {"nul": "a\x00b", "surrogate": "\ud800", "huge": 10**5000}[kind]


@task
def stamp() -> dict[str, object]:
    """When (wall clock) and where the task's first line ran."""
    import time

    return {"at": time.time(), "pid": os.getpid()}


def _busy(seconds: float) -> dict[str, float]:
    """Compute in pure Python for ``seconds``; where and when that ran."""
    import time

    start = time.time()
    deadline = time.perf_counter() + seconds
    total = 0
    while time.perf_counter() < deadline:
        total += sum(range(200))
    return {"pid": os.getpid(), "start": start, "end": time.time()}


@offload_task(cpu_bound=True)
def crunch(seconds: float) -> dict[str, float]:
    """A CPU-bound task, marked as such on its decorator."""
    return _busy(seconds)


@task
def crunch_unmarked(seconds: float) -> dict[str, float]:
    """The same work, unmarked: CPU-bound only on a queue the worker says is."""
    return _busy(seconds)


@task
def wait_io(seconds: float) -> dict[str, float]:
    """An I/O-bound task: it sleeps; where and when it ran."""
    import time

    start = time.time()
    time.sleep(seconds)
    return {"pid": os.getpid(), "start": start, "end": time.time()}


@task
def current_span_id() -> str:
    """The id of the OpenTelemetry span current while the task runs (hex)."""
    from opentelemetry import trace

    return format(trace.get_current_span().get_span_context().span_id, "016x")


# Unique tasks (docs/coordination.md).
@offload_task(unique_key=lambda customer_id, **kwargs: f"customer-{customer_id}")
def sync_customer(customer_id: int, full: bool = False) -> int:
    return customer_id


@offload_task(unique_key="reindex", unique_scope="active", on_duplicate="raise", max_attempts=1)
def reindex(index: str = "all") -> str:
    return index


@offload_task(unique_key="digest", unique_for=3600)
def send_digest(day: str) -> str:
    return day


# Concurrency limits (docs/coordination.md).
@offload_task(concurrency_key=lambda customer_id, **kwargs: f"account-{customer_id}")
def sync_account(customer_id: int, full: bool = False) -> int:
    return customer_id


@offload_task(concurrency_key="partner-api", concurrency_limit=2, max_attempts=1)
def call_partner(n: int) -> int:
    return n


@offload_task(concurrency_key="ledger", concurrency_limit=2)
def ledgered(path: str, index: int, seconds: float) -> int:
    """Append when it starts and ends to ``path`` (one O_APPEND write per
    line, times from the host's monotonic clock, which every process shares),
    for a test that reads how many ran at once."""
    import time

    def note(what: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{what} {index} {time.monotonic():.6f} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    note("start")
    time.sleep(seconds)
    note("end")
    return index


# Rate limits (docs/coordination.md). A minute's period: a test's window does
# not slide by itself; tests slide it by moving claimed_at back.
@offload_task(rate_key="partner-rate", rate_limit=(2, 60.0), max_attempts=3)
def rated_call(n: int) -> int:
    return n


@offload_task(rate_key=lambda region, **kwargs: f"region-{region}", rate_limit="1/m")
def rated_region(region: str) -> str:
    return region


@offload_task(rate_key="ledger-rate", rate_limit="20/s")
def rate_ledgered(path: str, index: int) -> int:
    """Append when it starts to ``path`` (one O_APPEND write, a time from the
    host's monotonic clock, which every process shares), for a test that
    reads how many started in any second."""
    import time

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"start {index} {time.monotonic():.6f} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return index


# Workflows (docs/coordination.md): steps that pass results along.
@task
def double(value: int) -> int:
    return value * 2


@task
def add_to(value: int, amount: int) -> int:
    return value + amount


@task
def total(values: list[int]) -> int:
    return sum(values)


@offload_task(max_attempts=1)
def fail_step(value: object, message: str = "step failed") -> None:
    raise ValueError(message)


@task
def outcomes(values: list[object]) -> list[object]:
    """What a callback that continues on failure received: each result, or
    the failed upstream's id and state."""
    from offload.workflows import Failed

    return [
        {"failed": v.task_id, "status": v.status} if isinstance(v, Failed) else v for v in values
    ]


@task
def ledger_member(path: str, index: int, seconds: float = 0.0) -> int:
    """Sleep ``seconds``, then append one line to ``path`` (O_APPEND), for a
    test that counts runs."""
    import time

    time.sleep(seconds)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"member {index} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return index


@task
def ledger_callback(values: list[int], path: str) -> int:
    """Append one line to ``path`` per run: the callback must run once."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"callback {len(values)} {sum(values)} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return sum(values)
