"""The admin in a real browser: Debian's Chromium, headless, driven by Playwright.

Loads the dashboard and the task pages, retries, cancels and pauses through the
UI, checks that no Content-Security-Policy violation occurs, and saves
screenshots to tests/artifacts/ (the README's come from here).
"""

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from offload.models import DepthSample, Queue, TaskRecord
from offload.progress import Progress
from offload.states import State
from offload.store import TaskStore
from tests.admin_factory import make_failed, make_task, make_user, make_worker

CHROMIUM = os.environ.get("OFFLOAD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

sync_api = pytest.importorskip("playwright.sync_api")

if not shutil.which(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing; CI must test in a real browser")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

# The live server runs in a thread: the data must be committed to be seen.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def page(live_server, monkeypatch) -> Iterator["sync_api.Page"]:
    # Playwright's sync API runs an event loop in this thread; the test's own
    # ORM calls are plain blocking calls, as Django's check cannot tell.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    make_user("root", superuser=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        # The admin has no favicon; its 404 is not a problem of ours.
        page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        problems: list[str] = []
        page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "pw")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        page.base = live_server.url  # type: ignore[attr-defined]
        page.problems = problems  # type: ignore[attr-defined]
        yield page
        # While Playwright's loop runs, Django hands this thread's ORM calls a
        # connection of their own (asgiref keys connections by context); close
        # it here, or the test database cannot be dropped afterwards.
        connections.close_all()
        browser.close()
    assert not problems, problems  # CSP violations and script errors show up here


def test_dashboard_draws_and_refreshes_only_while_visible(page):
    for _ in range(3):
        make_failed()
    make_task(queue_name="emails")
    make_task(status=State.RUNNING, attempt=1, lease_owner=make_worker().pk)
    # An hour of the workers' per-minute samples, before the page opened.
    now = timezone.now().replace(second=0, microsecond=0)
    for minute in range(60, 0, -1):
        for queue, ready in (("default", 40 - abs(30 - minute)), ("emails", minute // 6)):
            DepthSample.objects.create(
                minute=now - timedelta(minutes=minute), queue_name=queue, ready=ready, running=1
            )
    page.goto(f"{page.base}/admin/")
    page.click("text=Dashboard")
    page.wait_for_selector("#offload-dash[data-loaded]")
    assert page.text_content("#c-failed") == "3"
    assert page.text_content("#c-running") == "1"
    assert page.locator("#chart-finished svg polyline").count() == 2
    # The depth chart is drawn from the samples: an hour of points per queue
    # (plus the live one), not a single reading.
    assert page.get_attribute("#chart-depth", "data-samples") == "120"
    assert page.locator("#chart-depth svg polyline").count() >= 2  # and configured queues
    points = page.locator("#chart-depth svg polyline").first.get_attribute("points") or ""
    assert len(points.split()) == 61
    assert page.locator("#table-queues tbody tr").count() >= 2
    page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

    page.goto(f"{page.base}/admin/offload/dashboard/?refresh=1")
    # Polled from here: the page's CSP (rightly) refuses Playwright's eval-based waits.
    for _ in range(100):
        if int(page.get_attribute("#offload-dash", "data-loaded") or 0) >= 2:
            break
        page.wait_for_timeout(100)
    assert int(page.get_attribute("#offload-dash", "data-loaded") or 0) >= 2
    page.evaluate(
        "Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    before = page.get_attribute("#offload-dash", "data-loaded")
    page.wait_for_timeout(2500)
    assert page.get_attribute("#offload-dash", "data-loaded") == before


def test_find_understand_and_retry_a_failed_task(page):
    task = make_failed(kwargs={"password": "hunter2", "user": "ann"})
    page.goto(f"{page.base}/admin/offload/failedtask/")
    page.screenshot(path=ARTIFACTS / "failed-tasks.png", full_page=True)
    page.click(f"a[href$='/failedtask/{task.pk}/change/']")
    page.wait_for_selector("table.offload-errors")
    assert "ValueError: boom 3" in page.content()
    assert "hunter2" not in page.content()
    page.screenshot(path=ARTIFACTS / "task-detail.png", full_page=True)
    page.click("button.offload-op-retry")
    page.wait_for_selector(".messagelist .success")
    task.refresh_from_db()
    assert task.status == State.READY


def test_cancel_a_ready_task_and_pause_a_queue(page):
    task = make_task(queue_name="emails")
    page.goto(f"{page.base}/admin/offload/taskrecord/{task.pk}/change/")
    page.click("button.offload-op-cancel")
    page.wait_for_selector(".messagelist .success")
    task.refresh_from_db()
    assert task.status == State.CANCELLED

    make_task(queue_name="emails")
    page.goto(f"{page.base}/admin/offload/queue/")
    page.click("tr[data-queue='emails'] button")
    page.wait_for_selector("tr[data-queue='emails'] .offload-paused")
    assert Queue.objects.get(name="emails").paused_at is not None
    page.screenshot(path=ARTIFACTS / "queues.png", full_page=True)
    page.click("tr[data-queue='emails'] button")
    page.wait_for_selector(".messagelist .success")
    assert not Queue.objects.filter(name="emails").exists()
    assert TaskRecord.objects.filter(queue_name="emails", status=State.READY).count() == 1


def test_a_running_task_shows_its_progress(page):
    task = make_task(status=State.RUNNING, attempt=1, lease_owner=make_worker().pk)
    TaskStore("default").write_progress({(task.pk, 1): Progress(30, 40, "Resized 30 of 40 images")})
    page.goto(f"{page.base}/admin/offload/runningtask/")
    cell = page.locator("td.field-progress_column")
    assert cell.locator("progress.offload-progress-bar").count() == 1
    assert "75%" in (cell.text_content() or "")
    page.click(f"a[href$='/runningtask/{task.pk}/change/']")
    bar = page.locator(".offload-progress progress.offload-progress-bar")
    assert bar.get_attribute("value") == "30"
    assert bar.get_attribute("max") == "40"
    assert page.text_content(".offload-progress-figures") == "30 / 40 (75%)"
    message = page.text_content(".offload-progress-message") or ""
    assert message == "Resized 30 of 40 images"
    # The top of the page: the task and its progress (escaping is checked in
    # tests/integration/test_progress.py).
    page.screenshot(path=ARTIFACTS / "task-progress.png")


def test_select_all_asks_for_confirmation_then_copies_each_task_once(page):
    template = make_task(queue_name="emails")
    TaskRecord.objects.bulk_create(
        TaskRecord(
            task_path=template.task_path,
            backend="default",
            queue_name="emails",
            available_at=template.available_at,
            enqueued_at=template.enqueued_at,
        )
        for _ in range(54)
    )
    make_task(queue_name="default")
    page.goto(f"{page.base}/admin/offload/taskrecord/?queue=emails")
    page.check("#action-toggle")
    page.click(".actions .question a")  # "Select all 55 tasks"
    page.select_option("select[name=action]", "run_again")
    page.click("button[name=index]")
    page.wait_for_selector("#offload-confirm-count")
    assert page.text_content("#offload-confirm-count") == "55"
    assert "queue = emails" in (page.text_content(".offload-confirm-filters") or "")
    assert TaskRecord.objects.count() == 56  # nothing done yet
    page.screenshot(path=ARTIFACTS / "action-confirmation.png", full_page=True)
    page.click("#offload-confirm-yes")
    page.wait_for_selector(".messagelist .success")
    assert TaskRecord.objects.filter(queue_name="emails").count() == 110
    assert TaskRecord.objects.filter(queue_name="default").count() == 1


def _runner_traceback(message: str) -> str:
    """A traceback as the runner records one: offload's frames on top, the task's below."""
    offload = "/srv/app/.venv/lib/python3.13/site-packages/offload"
    frames = [
        f'  File "{offload}/worker/{name}.py", line {line}, in {func}\n    {code}\n'
        for name, line, func, code in (
            ("process", 88, "main", "loop.run()"),
            ("dispatcher", 140, "run", "self._run_one(claimed)"),
            ("dispatcher", 212, "_run_one", "runner.run(claimed)"),
            ("runner", 275, "run", "outcome = attempt.succeeded(call(attempt.task, args, kwargs))"),
        )
        for _ in range(4)
    ]
    return (
        "Traceback (most recent call last):\n"
        + "".join(frames)
        + f'  File "{offload}/task.py", line 139, in call\n    return task.func(*args, **kwargs)\n'
        + '  File "/srv/app/billing/tasks.py", line 42, in charge\n    check(invoice)\n'
        + '  File "/srv/app/billing/rules.py", line 7, in check\n    raise ValueError(msg)\n'
        + f"ValueError: {message}\n"
    )


def test_a_failed_tasks_page_shows_its_cause_above_the_fold_and_wide(page):
    error = {
        "exception_class_path": "builtins.ValueError",
        "traceback": _runner_traceback("the invoice total is negative"),
        "attempt": 1,
        "worker_id": "host:1:w",
        "at": timezone.now().isoformat(),
    }
    task = make_failed(attempt=1, max_attempts=1, errors=[error], kwargs={"invoice": 7})
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{page.base}/admin/offload/failedtask/{task.pk}/change/")
    for shown in ("ValueError", "the invoice total is negative"):
        box = page.get_by_text(shown).first.bounding_box()
        assert box is not None, shown
        assert box["y"] + box["height"] <= 800, (shown, box)
    content = page.locator("#content-main").bounding_box()
    traceback = page.locator("pre.offload-traceback").first.bounding_box()
    assert content is not None
    assert traceback is not None
    assert traceback["width"] >= 0.8 * content["width"], (traceback, content)
    # The task's frames lead the traceback; offload's stay on the page, below.
    text = page.locator("pre.offload-traceback").first.text_content() or ""
    assert text.index("billing/tasks.py") < text.index("ValueError: the invoice")
    assert "worker/runner.py" in (page.locator(".offload-own-frames").text_content() or "")
    page.screenshot(path=ARTIFACTS / "failed-task-lead.png")


def test_retry_from_a_failed_tasks_page_lands_on_its_page_in_the_new_state(page):
    task = make_failed()
    page.goto(f"{page.base}/admin/offload/failedtask/{task.pk}/change/")
    with page.expect_navigation() as landed:
        page.click("button.offload-op-retry")
    response = landed.value
    assert response is not None
    assert response.status == 200
    assert page.url == f"{page.base}/admin/offload/taskrecord/{task.pk}/change/"
    assert page.locator(".offload-lead .offload-status-ready").count() == 1
    assert page.locator(".messagelist .warning").count() == 0  # no "... doesn't exist"
    assert page.locator(".messagelist .success").count() == 1
