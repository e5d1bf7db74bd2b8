"""The admin in a real browser: Debian's Chromium, headless, driven by Playwright.

Loads the dashboard and the task pages, retries, cancels and pauses through the
UI, checks that no Content-Security-Policy violation occurs, and saves
screenshots to tests/artifacts/ (the README's come from here).
"""

import json
import os
import re
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


@pytest.fixture(scope="module")
def browser() -> Iterator["sync_api.Browser"]:
    # One Chromium for the module (each test gets a fresh context: its own
    # cookies and storage), since starting it costs seconds a test. Playwright's
    # sync API runs an event loop in this thread for as long as it is open, so
    # the ORM calls of every test in between are plain blocking calls that
    # Django's check cannot tell from async ones.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            yield chromium
            chromium.close()


@pytest.fixture
def page(live_server, browser) -> Iterator["sync_api.Page"]:
    ARTIFACTS.mkdir(exist_ok=True)
    make_user("root", superuser=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
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
    finally:
        context.close()
        # While Playwright's loop runs, Django hands this thread's ORM calls a
        # connection of their own (asgiref keys connections by context); close
        # it here, or the test database cannot be dropped afterwards.
        connections.close_all()
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
    # uPlot's charts: a canvas each, a legend naming the series.
    assert page.locator("#chart-finished canvas").count() == 1
    legend = page.locator("#chart-finished .u-legend").text_content() or ""
    assert "succeeded" in legend
    assert "failed" in legend
    # The depth chart is drawn from the samples: an hour of points per queue
    # (plus the live one), not a single reading.
    assert page.get_attribute("#chart-depth", "data-samples") == "120"
    data = page.locator("#chart-depth").evaluate("el => el.offloadPlot.data")
    assert len(data) >= 3  # the times, then default and emails
    assert sum(v is not None for v in data[1]) == 61  # default: 60 samples and the live one
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


def test_a_callbacks_page_shows_its_workflow_and_links_to_its_tasks(page):
    from offload.workflows import call, group
    from tests.app import tasks

    flow = group(call(tasks.double, n) for n in range(3)).then(call(tasks.total)).enqueue()
    page.goto(f"{page.base}/admin/offload/taskrecord/{flow.results[-1].id}/change/")
    assert page.locator("ol.offload-linked li").count() == 3
    assert page.locator("table.offload-workflow tbody tr").count() == 4
    assert page.locator("table.offload-workflow tr.offload-current").count() == 1
    page.locator("table.offload-workflow").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "task-workflow.png")
    page.click(f"a[href$='?workflow_id={flow.id}']")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 4


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


# -- layout: every list and the dashboard fit the window -----------------------------

LONG_PATH = "tests.app.tasks_of_a_rather_long_module_name.reports.generate_the_monthly_invoices"

# For each table on the page: does it stick out of its container, or a header
# cell out of the window? Read in the page, where the layout is.
OVERFLOWS_JS = """() => {
  const found = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width) {
    found.push(`page ${document.documentElement.scrollWidth} > ${width}`);
  }
  const content = document.querySelector("#content");
  const padding = parseFloat(getComputedStyle(content).paddingRight);
  const edge = content.getBoundingClientRect().right - padding + 1;
  for (const el of document.querySelectorAll("#content *")) {
    const right = el.getBoundingClientRect().right;
    if (right > edge) found.push(`${el.tagName}#${el.id}.${el.className} ends at ${right}`);
  }
  for (const table of document.querySelectorAll("#content table")) {
    const box = table.parentElement;
    if (box.scrollWidth > box.clientWidth) {
      found.push(`${table.id || table.className}: ${box.scrollWidth} > ${box.clientWidth}`);
    }
    for (const th of table.querySelectorAll("thead th")) {
      const right = th.getBoundingClientRect().right;
      if (right > width) found.push(`${th.textContent.trim()} ends at ${right} > ${width}`);
    }
  }
  return found;
}"""

# The lines a cell's text takes: its text's boxes, counted by their top.
LINES_JS = """cell => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
}"""


def _lists_to_check() -> None:
    from offload.models import Schedule

    now = timezone.now()
    for n in range(3):
        make_task(task_path=LONG_PATH, queue_name="reports-monthly")
        make_task(
            status=State.SUCCESSFUL, attempt=1, started_at=now, last_attempted_at=now,
            finished_at=now + timedelta(seconds=n * 100), task_path=LONG_PATH,
        )  # fmt: skip
        make_failed(task_path=LONG_PATH, errors=[{
            "exception_class_path": "billing.errors.InvoiceTotalIsNegativeError",
            "traceback": "Traceback (most recent call last):\nbilling.errors."
                         "InvoiceTotalIsNegativeError: " + "the invoice total is negative " * 6,
            "attempt": 3, "worker_id": "host:1:w", "at": now.isoformat(),
        }])  # fmt: skip
    for minutes in (90, 30, 60):
        at = now + timedelta(minutes=minutes)
        make_task(task_path=LONG_PATH, run_after=at, available_at=at)
    Schedule.objects.create(
        name="monthly-invoices-for-every-customer", task_path=LONG_PATH,
        cron="*/15 9-17 * * 1-5", timezone="America/Argentina/Buenos_Aires",
        next_fire_at=now + timedelta(minutes=15), last_fired_at=now,
    )  # fmt: skip
    Schedule.objects.create(
        name="cleanup", command="clearsessions", interval=3600,
        next_fire_at=now + timedelta(hours=1),
    )  # fmt: skip


def _headers(page) -> list[str]:
    """The list's column titles, without the sort priority Django puts before them."""
    texts = page.locator("#result_list thead th").all_text_contents()
    return [t.strip().splitlines()[-1].strip().lower() if t.strip() else "" for t in texts]


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_lists_fit_the_window(page, width):
    _lists_to_check()
    page.set_viewport_size({"width": width, "height": 900})
    for name in ("taskrecord", "failedtask", "scheduledtask", "schedule"):
        page.goto(f"{page.base}/admin/offload/{name}/")
        page.wait_for_selector("#result_list")
        assert page.evaluate(OVERFLOWS_JS) == [], name
        headers = _headers(page)
        for th in page.locator("#result_list thead th").all():
            box = th.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= width, (name, th.text_content())
        if name in ("taskrecord", "failedtask"):
            assert "finished" in headers, headers
            assert "run time" in headers, headers
        if width == 1280:
            page.screenshot(path=ARTIFACTS / f"list-{name}.png", full_page=True)
    # The schedule's cron expression, on one line.
    cell = page.locator("td.field-when", has_text="*/15 9-17 * * 1-5")
    assert cell.count() == 1
    assert cell.evaluate(LINES_JS) == 1
    assert page.locator("td.field-when", has_text="every 3600s").evaluate(LINES_JS) == 1
    # A cut path keeps the whole of it in its title.
    page.goto(f"{page.base}/admin/offload/taskrecord/")
    assert page.locator(f"a.offload-path[title='{LONG_PATH}']").count() == 12


def test_the_scheduled_list_shows_and_sorts_by_when_each_task_runs(page):
    _lists_to_check()
    page.goto(f"{page.base}/admin/offload/scheduledtask/")
    headers = _headers(page)
    assert "runs at" in headers, headers
    shown = page.locator("td.field-runs_at time").evaluate_all(
        "cells => cells.map((c) => c.getAttribute('datetime'))"
    )
    assert len(shown) == 3
    assert shown == sorted(shown)  # soonest first
    expected = sorted(
        TaskRecord.objects.filter(available_at__gt=timezone.now()).values_list(
            "available_at", flat=True
        )
    )
    assert shown == [at.isoformat() for at in expected]


def _samples_with_a_gap(hours: int) -> None:
    """Samples of the default queue over ``hours``, none in a stretch of 40 minutes."""
    now = timezone.now().replace(second=0, microsecond=0)
    for minute in range(hours * 60, 0, -1):
        if 20 < minute <= 60:
            continue  # the workers were down
        DepthSample.objects.create(
            minute=now - timedelta(minutes=minute), queue_name="default", ready=5, running=0
        )


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_dashboard_fits_and_its_day_axis_has_dates_and_gaps(page, width):
    _samples_with_a_gap(hours=3)
    make_failed(task_path=LONG_PATH)
    make_task(status=State.SUCCESSFUL, task_path=LONG_PATH, finished_at=timezone.now())
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{page.base}/admin/offload/dashboard/?window=day")
    page.wait_for_selector("#offload-dash[data-loaded]")
    assert page.evaluate(OVERFLOWS_JS) == []
    for chart in ("#chart-finished", "#chart-depth"):
        ticks = json.loads(page.get_attribute(chart, "data-x-ticks") or "[]")
        assert len(ticks) >= 2, (chart, ticks)
        assert ticks[0] != ticks[-1], ticks
        for label in (ticks[0], ticks[-1]):
            assert re.search(r"[A-Z][a-z]{2} \d{1,2}", label), label  # "Dec 3"
        box = page.locator(f"{chart} canvas").bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= width
    # The stretch without samples is a run of nulls, drawn as a gap, between samples.
    default = page.locator("#chart-depth").evaluate("el => el.offloadPlot.data")[1]
    present = [v is not None for v in default]
    first, last = present.index(True), len(present) - 1 - present[::-1].index(True)
    assert not all(present[first : last + 1])
    assert sum(1 for v in default[first:last] if v is None) >= 40
    # The finished chart has no gap: a minute without tasks is a zero.
    finished = page.locator("#chart-finished").evaluate("el => el.offloadPlot.data")
    assert None not in finished[1]
    assert len(finished[0]) == 24 * 60 + 1
    # The per-task table counts each ending apart.
    row = page.locator("#table-tasks tbody tr").first
    cells = row.locator("td").all_text_contents()
    assert cells[1:4] == ["1", "1", "0"], cells  # succeeded, failed, cancelled
    if width == 1280:
        page.screenshot(path=ARTIFACTS / "dashboard-day.png", full_page=True)


@pytest.mark.skipif(
    connections["default"].vendor != "postgresql",
    reason="only PostgreSQL's VACUUM can be held back",
)
def test_the_dashboard_names_a_transaction_that_holds_back_vacuum(page, settings):
    from tests.helpers import override_options
    from tests.integration.test_vacuum_blockers import APPLICATION, Snapshot

    held = Snapshot()
    try:
        with override_options(VACUUM_BLOCKER_WARNING=1):
            page.wait_for_timeout(1200)
            page.goto(f"{page.base}/admin/offload/dashboard/")
            page.wait_for_selector("#offload-dash[data-loaded]")
            assert page.is_visible("#offload-vacuum")
            shown = page.text_content("#offload-vacuum-list") or ""
            assert f"transaction of pid {held.pid} ({APPLICATION}, user " in shown
            assert "idle in transaction" in shown
            page.screenshot(path=ARTIFACTS / "dashboard-vacuum.png", full_page=True)
            held.end()
            page.goto(f"{page.base}/admin/offload/dashboard/")
            page.wait_for_selector("#offload-dash[data-loaded]")
            assert not page.is_visible("#offload-vacuum")
    finally:
        if not held.raw.closed:
            held.end()
