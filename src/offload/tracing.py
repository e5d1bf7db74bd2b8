"""OpenTelemetry spans of enqueues and attempts, when the project traces.

An enqueue is a PRODUCER span in the caller's trace; its context, as the
project's propagator writes it (W3C ``traceparent`` by default), goes into the
task's row, and each attempt the worker makes is a CONSUMER span whose parent
is that context: the request's trace continues into the task it enqueued.
Attributes follow OpenTelemetry's messaging conventions (``messaging.*``) where
they fit, and name the task in ``offload.*`` ones. A retry and a rescue are
events on the attempt spans (see docs/operations.md, "Tracing").

Everything here is resolved once per process, at the first enqueue or attempt
(never at import): without ``opentelemetry-api`` installed, or with no tracer
provider set by then (the API's default does nothing), ``active()`` is None
and the callers skip it all for the cost of one global read. A provider set
after that first use is not seen by this process; the project configures its
SDK at start-up (settings, ``wsgi.py``/``asgi.py``, or an ``AppConfig.ready``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

logger = logging.getLogger("offload.tracing")

# The instrumentation scope of offload's spans.
SCOPE = "offload"
# messaging.system: not one of the conventions' well-known values, as the
# conventions allow for a system they do not list.
SYSTEM = "offload"

# The kinds of error record (``offload.failures.cut_short``) that end an
# attempt without an outcome of its own: its worker was lost or crashed, the
# task timed out and was killed, its outcome was lost, or it was given back at
# shutdown. The next attempt carries the event, as the lost one's span may
# never have ended (its process died with it).
LOST_KINDS = frozenset(
    f"offload.exceptions.{name}"
    for name in ("WorkerLost", "WorkerCrashed", "TaskTimedOut", "OutcomeLost", "AttemptGivenBack")
)


class Sending(Protocol):
    """An enqueue in progress: the context its rows carry, and its task's id once
    inserted (told only when it enqueues one task)."""

    @property
    def carrier(self) -> str | None: ...

    def sent(self, task_id: int) -> None: ...


class Attempting(Protocol):
    """An attempt in progress, told how its task failed."""

    def failed(self, exc: BaseException, attempt: int, retry_in: float | None) -> None: ...


class _Off:
    """The span of everything when the project does not trace: does nothing."""

    carrier = None

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def sent(self, task_id: int) -> None:
        pass

    def failed(self, exc: BaseException, attempt: int, retry_in: float | None) -> None:
        pass


OFF = _Off()


class _Sent:
    def __init__(self, span: Span, carrier: str | None) -> None:
        self.span = span
        self.carrier = carrier

    def sent(self, task_id: int) -> None:
        self.span.set_attribute("messaging.message.id", str(task_id))


class _Running:
    def __init__(self, span: Span) -> None:
        self.span = span

    def failed(self, exc: BaseException, attempt: int, retry_in: float | None) -> None:
        # Called before the outcome is written: nothing here may stop that
        # (the SDK calls str() on the exception, which task code may break).
        try:
            self._failed(exc, attempt, retry_in)
        except Exception:
            logger.exception("Could not record the failure of attempt %d on its span", attempt)

    def _failed(self, exc: BaseException, attempt: int, retry_in: float | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self.span
        span.record_exception(exc, escaped=False)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
        if retry_in is not None:
            span.add_event(
                "offload.task.retry",
                {"offload.task.attempt": attempt, "offload.retry.delay_seconds": retry_in},
            )


class Tracing:
    """This process's tracer (the context goes through the project's global propagator)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    @contextmanager
    def _sending(self, task_path: str, queue: str, count: int) -> Iterator[Sending]:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": queue,
            "offload.task.path": task_path,
        }
        if count != 1:
            attributes["messaging.batch.message_count"] = count
        with self.tracer.start_as_current_span(
            f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)  # the current context: this span
            yield _Sent(span, json.dumps(carrier, separators=(",", ":")) if carrier else None)

    @contextmanager
    def _attempt(
        self,
        *,
        task_id: int,
        task_path: str,
        queue: str,
        attempt: int,
        worker_id: str,
        carrier: Mapping[str, str] | None,
        errors: list[dict[str, Any]],
    ) -> Iterator[Attempting]:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        parent = propagate.extract(carrier) if carrier else None
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": str(task_id),
            "messaging.client.id": worker_id,
            "offload.task.path": task_path,
            "offload.task.attempt": attempt,
        }
        with self.tracer.start_as_current_span(
            f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as span:
            lost = _lost_before(errors, attempt)
            if lost is not None:
                span.add_event("offload.task.rescued", lost)
            yield _Running(span)


def _lost_before(errors: list[dict[str, Any]], attempt: int) -> dict[str, Any] | None:
    """The attributes of the rescue event, if the attempt before ``attempt``
    ended without an outcome of its own (else None)."""
    if attempt < 2 or not errors:
        return None
    last = errors[-1]
    if not isinstance(last, dict) or last.get("attempt") != attempt - 1:
        return None
    kind = last.get("exception_class_path")
    if kind not in LOST_KINDS:
        return None
    traceback = last.get("traceback")
    return {
        "offload.rescue.reason": str(kind),
        "offload.rescue.message": traceback.strip() if isinstance(traceback, str) else "",
        "offload.rescue.attempt": attempt - 1,
        "offload.rescue.worker_id": str(last.get("worker_id") or ""),
    }


_UNRESOLVED: Any = object()
_active: Tracing | None = _UNRESOLVED


def active() -> Tracing | None:
    """This process's tracing, or None when it does not trace (resolved once)."""
    global _active
    if _active is _UNRESOLVED:
        _active = _resolve()
    return _active


def reset(provider: TracerProvider | None = None) -> None:
    """Trace with ``provider`` from now on; None: resolve again, from the
    global provider, at the next use. For tests, which cannot set the
    global provider more than once in a process."""
    global _active
    _active = _UNRESOLVED if provider is None else Tracing(provider.get_tracer(SCOPE))


def _resolve() -> Tracing | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    # The API's own providers: none was set (the proxy waits for one, making
    # spans that record nothing meanwhile), or tracing was turned off.
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return Tracing(provider.get_tracer(SCOPE))


def sending(
    enabled: bool, task_path: str, queue: str, count: int = 1
) -> AbstractContextManager[Sending]:
    """The span of an enqueue of ``count`` tasks (OFF when not tracing)."""
    tracing = active() if enabled else None
    if tracing is None:
        return OFF
    return tracing._sending(task_path, queue, count)


def attempting(
    enabled: bool,
    *,
    task_id: int,
    task_path: str,
    queue: str,
    attempt: int,
    worker_id: str,
    carrier: Mapping[str, str] | None,
    errors: list[dict[str, Any]],
) -> AbstractContextManager[Attempting]:
    """The span of one attempt, current while its code runs (OFF when not tracing)."""
    tracing = active() if enabled else None
    if tracing is None:
        return OFF
    return tracing._attempt(
        task_id=task_id, task_path=task_path, queue=queue, attempt=attempt,
        worker_id=worker_id, carrier=carrier, errors=errors,
    )  # fmt: skip
