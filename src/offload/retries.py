"""When a failed attempt is tried again, and after how long.

The policy has two halves on purpose:

* A task that *raised* is retried only for the exception classes it lists in
  ``retry_on`` (none by default). An exception is the task's own verdict, and
  running code with side effects again is the task author's decision, as in
  Django's own backends, where a raise ends the task.
* An attempt that never got to its verdict (its process crashed or was killed,
  it ran past its timeout, its worker vanished) is always tried again while
  attempts remain: that is the at-least-once promise.

Both stop at ``max_attempts`` (claims that ran, counting the first).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.utils.module_loading import import_string

BACKOFFS = ("exponential", "fixed")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff: str = "exponential"
    delay: float = 5.0  # seconds before the first retry (every retry, when fixed)
    max_delay: float = 3600.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = ()
    dont_retry_on: tuple[type[BaseException], ...] = ()

    def retries_exception(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt number ``attempt``, which raised ``exc``, gets another one."""
        return (
            attempt < self.max_attempts
            and isinstance(exc, self.retry_on)
            and not isinstance(exc, self.dont_retry_on)
        )

    def delay_after(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt after number ``attempt``."""
        growth = 1 if self.backoff == "fixed" else 2 ** max(0, attempt - 1)
        base = min(self.delay * growth, self.max_delay)
        if not self.jitter:
            return base
        # "Equal jitter": at least half the delay, so retries never bunch up at
        # zero, and spread over the other half, so a burst of failures does
        # not come back as a burst.
        return base / 2 + (rng or random).uniform(0, base / 2)

    def overridden(self, **changes: Any) -> RetryPolicy:
        """This policy with the given fields replaced where they are not None."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def import_exceptions(paths: Sequence[str]) -> tuple[type[BaseException], ...]:
    """Exception classes named by import path (``"builtins.ConnectionError"``)."""
    found = []
    for path in paths:
        cls = import_string(path)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(f"{path!r} is not an exception class.")
        found.append(cls)
    return tuple(found)


def check_policy_values(
    *, max_attempts: object, backoff: object, delay: object, max_delay: object, where: str
) -> list[str]:
    """Problems with retry settings, each naming ``where`` they come from."""
    problems = []
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        problems.append(
            f"{where} max_attempts must be an integer of at least 1, got {max_attempts!r}."
        )
    if backoff is not None and backoff not in BACKOFFS:
        problems.append(f"{where} backoff must be one of {', '.join(BACKOFFS)}, got {backoff!r}.")
    for name, value in (("delay", delay), ("max_delay", max_delay)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            problems.append(f"{where} {name} must be a number of seconds >= 0, got {value!r}.")
    return problems
