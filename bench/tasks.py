"""The tasks the benchmark enqueues.

They do (next to) nothing on purpose: the benchmark measures offload's own cost
per task (insert, claim, record), which real work would hide.
"""

import time

from django.tasks import task


@task
def noop() -> None:
    """Return at once: every second a worker spends on it is offload's overhead."""


@task
def sleep_ms(ms: int) -> None:
    """Sleep ``ms`` milliseconds, to stand in for a task that waits on I/O."""
    time.sleep(ms / 1000)
