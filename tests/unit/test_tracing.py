"""When tracing is off, and which history makes a rescue event (no database)."""

import subprocess
import sys

import pytest

from offload import tracing


@pytest.fixture
def unresolved():
    tracing.reset()
    yield
    tracing.reset()


def test_importing_it_imports_no_opentelemetry():
    code = "import sys, offload.tracing; print('opentelemetry' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_without_the_api_it_is_off(unresolved, monkeypatch):
    # None in sys.modules makes the import raise ImportError, as when not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    assert tracing.active() is None
    assert tracing.sending(True, "tests.app.tasks.add", "default") is tracing.OFF


def test_without_a_tracer_provider_it_is_off(unresolved):
    from opentelemetry import trace

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert tracing.active() is None


def test_off_is_resolved_once(unresolved, monkeypatch):
    assert tracing.active() is None
    # A provider found later is not looked for: resolving again would cost every task.
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setattr(trace, "get_tracer_provider", TracerProvider)
    assert tracing.active() is None
    tracing.reset()
    assert tracing.active() is not None


def test_off_carries_nothing_and_hears_nothing():
    with tracing.OFF as span:
        assert span.carrier is None
        span.sent(1)
        span.failed(ValueError("x"), 1, 2.0)


def test_disabled_is_off_even_with_a_provider():
    from opentelemetry.sdk.trace import TracerProvider

    tracing.reset(TracerProvider())
    try:
        assert tracing.sending(False, "tests.app.tasks.add", "default") is tracing.OFF
        assert tracing.active() is not None
    finally:
        tracing.reset()


def error(kind, attempt, worker_id="w-1"):
    return {
        "exception_class_path": f"offload.exceptions.{kind}",
        "traceback": f"offload.exceptions.{kind}: lost\n",
        "attempt": attempt,
        "worker_id": worker_id,
    }


def test_the_attempt_after_a_lost_one_carries_the_rescue():
    assert tracing._lost_before([error("WorkerLost", 1)], 2) == {
        "offload.rescue.reason": "offload.exceptions.WorkerLost",
        "offload.rescue.message": "offload.exceptions.WorkerLost: lost",
        "offload.rescue.attempt": 1,
        "offload.rescue.worker_id": "w-1",
    }
    assert tracing._lost_before([error("TaskTimedOut", 2)], 3) is not None


@pytest.mark.parametrize(
    ("errors", "attempt"),
    [
        ([], 2),  # nothing went wrong before
        ([error("WorkerLost", 1)], 1),  # a first attempt follows no other
        ([error("WorkerLost", 1)], 3),  # a record of an earlier attempt than the one before
        ([{**error("WorkerLost", 1), "exception_class_path": "builtins.ValueError"}], 2),
        (["not a record"], 2),
    ],
)
def test_other_histories_carry_no_rescue(errors, attempt):
    assert tracing._lost_before(errors, attempt) is None


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text")


def test_a_failure_that_cannot_be_recorded_does_not_stop_the_attempt(caplog):
    from opentelemetry.sdk.trace import TracerProvider

    with TracerProvider().get_tracer("tests").start_as_current_span("attempt") as span:
        tracing._Running(span).failed(Unprintable(), 1, None)
    assert "Could not record the failure of attempt 1" in caplog.text
