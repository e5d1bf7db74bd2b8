"""OpenTelemetry spans of enqueues and attempts, through a real in-process worker
on every database, read back with the SDK's in-memory exporter.

The worker runs in this process (``drain``: the burst path, its threads and
event loop), so the exporter sees its spans; a worker's task processes would
export theirs through their own SDK.
"""

from dataclasses import replace

import pytest
from asgiref.sync import async_to_sync
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import offload
from offload import tracing
from offload.models import TaskRecord
from offload.retries import RetryPolicy
from offload.worker.rescue import Rescuer
from tests.app import tasks
from tests.helpers import drain, override_options


@pytest.fixture
def provider():
    # The global provider can be set once per process: the tests hand theirs
    # to offload directly, as the global one would be found.
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.reset(provider)
    provider.exporter = exporter
    yield provider
    tracing.reset()
    provider.shutdown()


def spans_of(provider, kind=None, name=None) -> list[ReadableSpan]:
    return [
        span
        for span in provider.exporter.get_finished_spans()
        if (kind is None or span.kind == kind) and (name is None or span.name == name)
    ]


def test_a_request_trace_continues_into_the_task_it_enqueued(provider):
    with provider.get_tracer("tests").start_as_current_span("request", kind=SpanKind.SERVER):
        result = tasks.add.enqueue(2, 3)
    assert TaskRecord.objects.get(pk=result.id).trace_context["traceparent"]
    drain()

    (request,) = spans_of(provider, name="request")
    (send,) = spans_of(provider, SpanKind.PRODUCER)
    (process,) = spans_of(provider, SpanKind.CONSUMER)
    assert send.name == "send default"
    assert send.parent.span_id == request.context.span_id
    assert dict(send.attributes) == {
        "messaging.system": "offload",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "default",
        "offload.task.path": "tests.app.tasks.add",
        "messaging.message.id": result.id,
    }
    assert process.name == "process default"
    assert process.context.trace_id == request.context.trace_id
    assert process.parent.span_id == send.context.span_id
    attributes = dict(process.attributes)
    assert attributes.pop("messaging.client.id")  # the worker's id
    assert attributes == {
        "messaging.system": "offload",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": result.id,
        "offload.task.path": "tests.app.tasks.add",
        "offload.task.attempt": 1,
    }
    assert process.status.status_code == StatusCode.UNSET
    assert process.events == ()


def test_a_failed_attempt_records_its_error_and_its_retry(provider):
    with provider.get_tracer("tests").start_as_current_span("request"):
        result = tasks.flaky.enqueue(1, "traced")
    drain()

    first, second = sorted(
        spans_of(provider, SpanKind.CONSUMER), key=lambda s: s.attributes["offload.task.attempt"]
    )
    (send,) = spans_of(provider, SpanKind.PRODUCER)
    for span in (first, second):
        assert span.parent.span_id == send.context.span_id
        assert span.attributes["messaging.message.id"] == result.id
    assert first.status.status_code == StatusCode.ERROR
    assert first.status.description == "ConnectionError: attempt 1 fails on purpose"
    exception, retry = first.events
    assert exception.name == "exception"
    assert exception.attributes["exception.type"] == "ConnectionError"
    assert "attempt 1 fails on purpose" in exception.attributes["exception.stacktrace"]
    assert retry.name == "offload.task.retry"
    assert dict(retry.attributes) == {
        "offload.task.attempt": 1,
        "offload.retry.delay_seconds": 0.0,
    }
    assert second.status.status_code == StatusCode.UNSET
    assert second.events == ()


def test_a_final_failure_is_an_error_with_no_retry_event(provider):
    tasks.fail.enqueue("no more")
    drain()
    (process,) = spans_of(provider, SpanKind.CONSUMER)
    assert process.status.status_code == StatusCode.ERROR
    assert [event.name for event in process.events] == ["exception"]
    assert process.events[0].attributes["exception.type"] == "ValueError"


def test_a_rescued_attempt_is_an_event_on_the_next_one(provider, backend):
    store = backend.store
    with provider.get_tracer("tests").start_as_current_span("request"):
        result = tasks.add.enqueue(1, 1)
    (lost,) = store.claim("w-gone", limit=1, lease_seconds=-1)
    # The elected rescuer's own sweep, with no delay before the retry.
    config = replace(backend.config, retry=RetryPolicy(backoff="fixed", delay=0, jitter=False))
    assert Rescuer("default", config, "tests-rescuer").work(store) == 1
    drain()

    (process,) = spans_of(provider, SpanKind.CONSUMER)
    assert process.attributes["offload.task.attempt"] == 2
    assert process.context.trace_id == spans_of(provider, name="request")[0].context.trace_id
    (rescued,) = process.events
    assert rescued.name == "offload.task.rescued"
    assert rescued.attributes["offload.rescue.reason"] == "offload.exceptions.WorkerLost"
    assert rescued.attributes["offload.rescue.attempt"] == lost.attempt == 1
    assert rescued.attributes["offload.rescue.worker_id"] == "w-gone"
    assert "stopped renewing its lease" in rescued.attributes["offload.rescue.message"]
    assert backend.get_result(result.id).return_value == 2


def test_enqueue_many_is_one_span_that_every_attempt_continues(provider):
    with provider.get_tracer("tests").start_as_current_span("request"):
        results = offload.enqueue_many(tasks.add, [([n, n], {}) for n in range(3)])
    drain()
    (send,) = spans_of(provider, SpanKind.PRODUCER)
    assert send.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in send.attributes
    processed = spans_of(provider, SpanKind.CONSUMER)
    assert sorted(span.attributes["messaging.message.id"] for span in processed) == sorted(
        result.id for result in results
    )
    assert {span.parent.span_id for span in processed} == {send.context.span_id}


def test_aenqueue_and_an_async_task_are_traced_alike(provider):
    async def request():
        with provider.get_tracer("tests").start_as_current_span("request"):
            return await tasks.async_add.aenqueue(4, 5)

    result = async_to_sync(request)()
    drain()
    (request_span,) = spans_of(provider, name="request")
    (send,) = spans_of(provider, SpanKind.PRODUCER)
    (process,) = spans_of(provider, SpanKind.CONSUMER)
    assert send.parent.span_id == request_span.context.span_id
    assert process.parent.span_id == send.context.span_id
    assert process.attributes["messaging.message.id"] == result.id


def test_the_attempt_span_is_current_while_the_task_runs(provider):
    result = tasks.current_span_id.enqueue()
    drain()
    (process,) = spans_of(provider, SpanKind.CONSUMER)
    # What the task's own spans (or an instrumented library's) are children of.
    assert tasks.current_span_id.get_result(result.id).return_value == format(
        process.context.span_id, "016x"
    )
    # An enqueue outside any trace starts one: the attempt continues it.
    (send,) = spans_of(provider, SpanKind.PRODUCER)
    assert send.parent is None
    assert process.context.trace_id == send.context.trace_id


def test_without_a_tracer_provider_nothing_is_stored_or_raised(provider):
    tracing.reset()  # the global provider: the API's default, none set
    assert tracing.active() is None
    with provider.get_tracer("tests").start_as_current_span("request"):
        result = tasks.flaky.enqueue(1, "untraced")
        many = offload.enqueue_many(tasks.add, [([1, 2], {})])
    stats = drain()
    assert (stats.retried, stats.succeeded) == (1, 2)
    assert TaskRecord.objects.filter(trace_context__isnull=False).count() == 0
    assert TaskRecord.objects.get(pk=result.id).status == "SUCCESSFUL"
    assert TaskRecord.objects.get(pk=many[0].id).status == "SUCCESSFUL"
    assert spans_of(provider, name="request")  # the test's own span, and nothing else
    assert len(spans_of(provider)) == 1


def test_the_tracing_option_turns_it_off(provider):
    with override_options(TRACING=False):
        tasks.add.enqueue(1, 2)
        drain()
    assert spans_of(provider) == []
    assert TaskRecord.objects.get().trace_context is None


def test_a_stored_trace_context_that_is_not_one_is_ignored(provider):
    result = tasks.add.enqueue(1, 2)
    TaskRecord.objects.filter(pk=result.id).update(trace_context=["not", "a", "carrier"])
    drain()
    (process,) = spans_of(provider, SpanKind.CONSUMER)
    assert process.parent is None  # a trace of its own
    assert TaskRecord.objects.get(pk=result.id).status == "SUCCESSFUL"
