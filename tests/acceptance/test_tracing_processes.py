"""OpenTelemetry across processes: a trace begun where a task is enqueued goes on
in the task process of a real worker, which exports its spans through its own
SDK, as a project's worker does."""

import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from offload import tracing
from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks
from tests.app.span_file import SpanFile

WORKER = ("-m", "django", "offload", "worker", "--burst", "--processes", "2", "-v", "0")


def test_a_workers_task_processes_continue_the_enqueuers_trace(start_process, tmp_path):
    spans = tmp_path / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanFile(str(spans))))
    tracing.reset(provider)
    try:
        tracer = provider.get_tracer("tests")
        with tracer.start_as_current_span("request", kind=SpanKind.SERVER):
            ok = tasks.add.enqueue(2, 3)
            failed = tasks.fails_with.enqueue("value")
    finally:
        tracing.reset()
        provider.shutdown()

    worker = start_process(*WORKER, env={"OFFLOAD_TEST_SPANS": str(spans)})
    output = worker.communicate(timeout=120)[0]
    assert worker.returncode == 0, output
    assert TaskRecord.objects.get(pk=ok.id).status == State.SUCCESSFUL
    assert TaskRecord.objects.get(pk=failed.id).status == State.FAILED

    found = [json.loads(line) for line in spans.read_text().splitlines()]
    (request,) = [s for s in found if s["name"] == "request"]
    sends = {s["attributes"]["messaging.message.id"]: s for s in found if s["kind"] == "PRODUCER"}
    processes = [s for s in found if s["kind"] == "CONSUMER"]
    assert {s["pid"] for s in processes}.isdisjoint({request["pid"]})  # the worker's own
    by_task = {s["attributes"]["messaging.message.id"]: s for s in processes}
    assert set(by_task) == {str(ok.id), str(failed.id)}
    for task_id, process in by_task.items():
        assert process["trace_id"] == request["trace_id"]
        assert process["parent_id"] == sends[task_id]["span_id"]
    assert by_task[str(ok.id)]["status"] != "ERROR"
    assert by_task[str(failed.id)]["status"] == "ERROR"
