"""The OpenTelemetry SDK of a test process: every span it ends, one JSON line
appended to a file that several processes share."""

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class SpanFile(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            line = json.dumps(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": format(span.context.trace_id, "032x"),
                    "span_id": format(span.context.span_id, "016x"),
                    "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                    "pid": os.getpid(),
                    "attributes": dict(span.attributes or {}),
                    "status": span.status.status_code.name,
                }
            )
            # One write of a line opened for appending: lines of several
            # processes never interleave.
            with open(self.path, "a") as file:
                file.write(line + "\n")
        return SpanExportResult.SUCCESS


def export_spans_to(path: str) -> None:
    """Make this process's global tracer provider export every span to ``path``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanFile(path)))
    trace.set_tracer_provider(provider)
