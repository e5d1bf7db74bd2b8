"""Progress reported by running tasks: the fenced store write, the worker's
board and final write, ``get_progress``, and the admin pages that show it."""

import logging
import time

import pytest
from django.tasks.exceptions import TaskResultDoesNotExist
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from offload.models import TaskRecord
from offload.progress import Progress
from offload.states import State
from offload.store import TaskStore
from tests.admin_factory import make_task, make_user
from tests.app import tasks
from tests.helpers import drain


def _store() -> TaskStore:
    return TaskStore("default")


def _running(**fields: object) -> TaskRecord:
    return make_task(status=State.RUNNING, attempt=2, lease_owner="w", **fields)


def test_one_statement_writes_several_tasks_progress():
    first, second = _running(), _running()
    written = _store().write_progress(
        {(first.pk, 2): Progress(3, 10, "three"), (second.pk, 2): Progress(1.5, None, "")}
    )
    assert written == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.progress_current, first.progress_total, first.progress_message) == (
        3, 10, "three",
    )  # fmt: skip
    assert (second.progress_current, second.progress_total) == (1.5, None)
    assert first.progress_at is not None
    assert abs((timezone.now() - first.progress_at).total_seconds()) < 60


def test_a_stale_attempts_progress_is_refused():
    task = _running()
    finished = make_task(status=State.SUCCESSFUL, attempt=2)
    written = _store().write_progress(
        {
            (task.pk, 1): Progress(9, 10, "from a presumed-dead worker"),
            (finished.pk, 2): Progress(1, 1, "too late"),
        }
    )
    assert written == 0
    for row in (task, finished):
        row.refresh_from_db()
        assert row.progress_current is None
        assert row.progress_at is None


def test_the_worker_writes_the_last_report_before_the_outcome(backend):
    result = tasks.report_steps.enqueue(4, 0.0)
    drain()
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == State.SUCCESSFUL
    assert (row.progress_current, row.progress_total, row.progress_message) == (4, 4, "step 4")
    progress = backend.get_progress(result.id)
    assert progress is not None
    assert progress.fraction == 1.0
    assert progress.reported_at is not None


def test_many_reports_cost_one_write_per_interval(caplog):
    """200 reports over about a second: the default 1 s interval allows a write
    at the first report, one a second later, and the last before the outcome."""
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    result = tasks.report_steps.enqueue(200, 0.005)
    begun = time.monotonic()
    drain(log_sql=True)
    elapsed = time.monotonic() - begun
    writes = [r for r in caplog.records if "SET progress_current" in r.getMessage()]
    assert 1 <= len(writes) <= elapsed / 1.0 + 2, (len(writes), elapsed)
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.progress_current, row.progress_message) == (200, "step 200")


def test_async_tasks_report_through_the_same_call(backend):
    result = tasks.async_report_steps.enqueue(3, 0.01)
    drain()
    progress = backend.get_progress(result.id)
    assert progress == Progress(3, 3, "async step 3", progress.reported_at)


def test_bad_progress_fails_the_task_with_a_clear_error(backend):
    result = tasks.report_bad_progress.enqueue()
    drain()
    row = TaskRecord.objects.get(pk=result.id)
    assert row.status == State.FAILED
    assert row.errors[-1]["exception_class_path"] == "offload.exceptions.InvalidProgress"
    assert "above total" in row.errors[-1]["traceback"]
    assert backend.get_progress(result.id) is None


def test_get_progress_of_an_unknown_task(backend):
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_progress("999999")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_progress("nope")


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def test_the_detail_page_shows_progress_escaped(operator):
    task = _running()
    _store().write_progress({(task.pk, 2): Progress(3, 4, "<script>alert(1)</script>")})
    page = operator.get(reverse("admin:offload_runningtask_change", args=[task.pk]))
    assert page.status_code == 200
    assert '<progress class="offload-progress-bar" max="4" value="3">75%</progress>' in page.text
    assert "3 / 4 (75%)" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "reported" in page.text


def test_the_detail_page_of_a_task_without_progress_has_no_bar(operator):
    task = _running()
    page = operator.get(reverse("admin:offload_runningtask_change", args=[task.pk]))
    assert "offload-progress-bar" not in page.text


def test_the_running_list_has_a_progress_column(operator):
    task = _running()
    quiet = _running()
    _store().write_progress({(task.pk, 2): Progress(7, None, "<b>rows</b>")})
    page = operator.get(reverse("admin:offload_runningtask_changelist"))
    assert page.status_code == 200
    assert "column-progress_column" in page.text
    assert "7 <small>&lt;b&gt;rows&lt;/b&gt;</small>" in page.text
    assert "<b>rows</b>" not in page.text
    assert f"/runningtask/{quiet.pk}/change/" in page.text
