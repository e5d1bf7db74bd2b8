"""A failed task's page leads with its cause, the failed list shows each message,
and an operation lands on a page that exists and shows the task's new state."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from offload.command_tasks import run_command
from offload.models import TaskRecord
from offload.states import State
from tests.admin_factory import make_failed, make_task, make_user
from tests.app.tasks import fail
from tests.helpers import drain


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def _failed(message: str) -> TaskRecord:
    result = fail.enqueue(message)
    drain()
    record = TaskRecord.objects.get(pk=result.id)
    assert record.status == State.FAILED
    return record


def _lead(html: str) -> str:
    found = re.search(r'<div class="module offload-lead">.*?</div>\s*<fieldset', html, re.S)
    assert found, "the page has no lead section before its fieldsets"
    return found.group(0)


def test_the_page_leads_with_status_class_and_message(operator):
    task = _failed("the invoice total is negative")
    page = operator.get(reverse("admin:offload_failedtask_change", args=[task.pk]))
    assert page.status_code == 200
    lead = _lead(page.text)
    assert "offload-status-failed" in lead
    assert "builtins.ValueError" in lead
    assert "the invoice total is negative" in lead
    # Before the task's own facts (path, queue ...), not under them.
    assert page.text.index("the invoice total is negative") < page.text.index("field-task_path")


def test_the_traceback_puts_the_tasks_frames_first_and_keeps_offloads(operator):
    task = _failed("boom")
    recorded = task.errors[-1]["traceback"]
    offload_files = set(re.findall(r'File "([^"]*/offload/[^"]*)"', recorded))
    assert offload_files, "the runner's frames are in the recorded traceback"
    page = operator.get(reverse("admin:offload_failedtask_change", args=[task.pk]))
    lead = page.text[page.text.index('class="module offload-lead"') :]
    own = re.search(r'<pre class="[^"]*offload-traceback-lead">(.*?)</pre>', lead, re.S)
    assert own
    # The first frame shown is the task's (tests/app/tasks.py), not the runner's.
    first = re.search(r"File &quot;([^&]*)&quot;", own.group(1))
    assert first
    assert first.group(1).endswith("tests/app/tasks.py"), first.group(1)
    assert "offload/worker" not in own.group(1)
    moved = re.search(r'<details class="offload-own-frames">.*?</details>', lead, re.S)
    assert moved
    for file in offload_files:  # no frame is lost
        assert file in moved.group(0)


def test_a_failed_command_shows_its_exit_status_and_output_near_the_top(operator):
    result = run_command.enqueue("broken", exit=3)
    drain()
    page = operator.get(reverse("admin:offload_failedtask_change", args=[result.id]))
    lead = _lead(page.text)
    assert re.search(r'class="offload-exit-status">3<', lead)
    assert "started the work" in lead.split('class="offload-output offload-output-stdout">', 1)[1]
    assert "offload.exceptions.CommandFailed" in lead


def test_a_successful_commands_page_shows_exit_status_zero(operator):
    result = run_command.enqueue("greet", "Ada")
    drain()
    page = operator.get(reverse("admin:offload_successfultask_change", args=[result.id]))
    lead = _lead(page.text)
    assert re.search(r'class="offload-exit-status">0<', lead)
    assert "Hello, Ada!" in lead


def test_the_failed_list_has_a_bounded_masked_escaped_message_column(operator):
    plain = _failed("the invoice total is negative")
    long = make_failed(
        errors=[
            {
                "exception_class_path": "billing.errors.Refused",
                "traceback": "Traceback (most recent call last):\n"
                + '  File "/app/billing.py", line 1, in charge\n'
                + "billing.errors.Refused: <b>card</b> password=hunter2 "
                + "x" * 50_000
                + "\n",
                "attempt": 1,
                "worker_id": "w",
                "at": "2026-01-01T00:00:00+00:00",
            }
        ]
    )
    empty = make_task(status=State.FAILED, errors=[])
    with CaptureQueriesContext(connection) as queries:
        listing = operator.get(reverse("admin:offload_failedtask_changelist"))
    # The errors column is read for the page's rows only, never to count the list.
    reads = [q["sql"] for q in queries.captured_queries if "errors" in q["sql"]]
    assert len(reads) == 1
    assert "COUNT" not in reads[0].upper()
    assert listing.status_code == 200
    assert '<th scope="col" class="column-error_message">' in listing.text
    cells = dict(
        re.findall(
            r'/failedtask/(\d+)/change/.*?<td class="field-error_message">(.*?)</td>',
            listing.text,
            re.S,
        )
    )
    assert "the invoice total is negative" in cells[str(plain.pk)]
    assert "ValueError" in cells[str(plain.pk)]
    cell = cells[str(long.pk)]
    assert "Refused" in cell
    assert "&lt;b&gt;card&lt;/b&gt;" in cell
    assert "<b>card" not in cell
    assert "hunter2" not in cell
    assert len(cell) < 1_000  # cut short, never 50,000 characters
    assert cells[str(empty.pk)].strip() == "-"


def test_retry_from_the_failed_page_lands_on_the_tasks_page_in_its_new_state(operator):
    task = _failed("boom")
    done = operator.post(reverse("admin:offload_failedtask_operate", args=[task.pk, "retry"]))
    assert done.status_code == 302
    landed = operator.get(done["Location"])
    assert landed.status_code == 200
    assert landed.request["PATH_INFO"] == reverse("admin:offload_taskrecord_change", args=[task.pk])
    assert "offload-status-ready" in _lead(landed.text)
    assert "Retried 1 task(s)." in landed.text
    assert "doesn" not in landed.text  # no "... doesn't exist" warning


def test_an_operation_that_keeps_the_task_in_its_view_stays_there(operator):
    task = _failed("boom")
    done = operator.post(reverse("admin:offload_failedtask_operate", args=[task.pk, "copy"]))
    assert done["Location"] == reverse("admin:offload_failedtask_change", args=[task.pk])
    assert operator.get(done["Location"]).status_code == 200
    ready = make_task()
    done = operator.post(reverse("admin:offload_readytask_operate", args=[ready.pk, "cancel"]))
    landed = operator.get(done["Location"])
    assert landed.status_code == 200
    assert "offload-status-cancelled" in _lead(landed.text)
