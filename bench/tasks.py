"""The tasks the benchmark enqueues.

They do (next to) nothing on purpose, or stand in for one kind of work: the
benchmark measures each backend's own cost per task (insert, claim, record),
which real work would hide.
"""

import asyncio
import time

from django.tasks import task

from bench.caller_clock import append_stamp


@task
def noop() -> None:
    """Return at once: every second a worker spends on it is the backend's overhead."""


@task
def append_line(path: str, token: int) -> None:
    """Append one line to a file: the body every system runs in W1-W4 and W7.

    Its first line reads the host's monotonic clock (CLOCK_MONOTONIC, one
    clock for every process of the host), so the caller's clock measures
    from before ``enqueue()`` to here.
    """
    now = time.monotonic()
    append_stamp(path, token, now)


@task
def append_after(results: list[object], path: str, token: int) -> None:
    """``append_line`` as a workflow's callback, which receives its members' results first."""
    now = time.monotonic()
    append_stamp(path, token, now)


@task
def sleep_ms(ms: int) -> None:
    """Sleep ``ms`` milliseconds, to stand in for a task that waits on I/O."""
    time.sleep(ms / 1000)


@task
async def async_sleep_ms(ms: int) -> None:
    """The ``async def`` kind of ``sleep_ms``."""
    await asyncio.sleep(ms / 1000)


def spin(rounds: int) -> int:
    """Pure-Python arithmetic that holds the GIL throughout."""
    total = 0
    for number in range(rounds):
        total = (total + number * number) % 1_000_003
    return total


@task
def cpu_bound(rounds: int) -> None:
    """Burn ``rounds`` rounds of ``spin``: the bench sizes it to about 50 ms."""
    spin(rounds)
