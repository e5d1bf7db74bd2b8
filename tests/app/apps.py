import os

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.app"
    label = "offload_tests"

    def ready(self) -> None:
        # A process started with OFFLOAD_TEST_SPANS=FILE exports every span it
        # ends to FILE, as a project sets up its tracing SDK at start (see
        # tests/acceptance/test_tracing_processes.py).
        spans_file = os.environ.get("OFFLOAD_TEST_SPANS")
        if spans_file:
            from tests.app.span_file import export_spans_to

            export_spans_to(spans_file)
