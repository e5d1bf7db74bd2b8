"""Schedules from settings and ``@schedule`` are synced to the table, checked, and listed."""

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.core import checks
from django.core.management import call_command
from django.tasks import task_backends
from django.test import Client, override_settings
from django.urls import reverse

from offload.backend import DatabaseBackend
from offload.models import Schedule, ScheduleFire
from offload.schedules import schedule
from offload.schedules.checks import check_schedules, check_stored_schedules
from offload.schedules.registry import unregister
from offload.schedules.sync import sync
from tests.admin_factory import make_user
from tests.app import tasks

BACKEND = "offload.backend.DatabaseBackend"


def tasks_setting(schedules: dict[str, object]) -> dict[str, object]:
    return {
        "default": {
            "BACKEND": BACKEND,
            "QUEUES": ["default", "emails", "reports"],
            "OPTIONS": {"SCHEDULES": schedules},
        }
    }


def default_backend() -> DatabaseBackend:
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    return backend


ISSUE_EXAMPLE = {
    "nightly-report": {"task": "tests.app.tasks.echo", "cron": "0 3 * * *",
                       "kwargs": {"full": True}},
    "clear-sessions": {"command": "clearsessions", "cron": "@daily"},
    "heartbeat": {"task": "tests.app.tasks.echo", "interval": 30, "args": ["web"]},
}  # fmt: skip


@pytest.fixture
def declared() -> Iterator[None]:
    """A schedule declared with the decorator, forgotten after the test."""
    schedule(cron="*/10 * * * *", name="declared", kwargs={"a": 1}, queue="reports")(tasks.echo)
    yield
    unregister("default", "declared")


def test_settings_and_decorated_schedules_are_synced_as_from_code(declared):
    with override_settings(TASKS=tasks_setting(ISSUE_EXAMPLE)):
        report = sync(default_backend())
    assert sorted(report.created) == ["clear-sessions", "declared", "heartbeat", "nightly-report"]
    rows = {row.name: row for row in Schedule.objects.all()}
    assert all(row.from_code and row.enabled for row in rows.values())
    assert (rows["nightly-report"].cron, rows["nightly-report"].kwargs) == (
        "0 3 * * *", {"full": True}
    )  # fmt: skip
    assert (rows["clear-sessions"].command, rows["clear-sessions"].cron) == (
        "clearsessions", "0 0 * * *"
    )  # fmt: skip
    assert (rows["heartbeat"].interval, rows["heartbeat"].args) == (30, ["web"])
    assert (rows["declared"].task_path, rows["declared"].queue_name) == (
        "tests.app.tasks.echo", "reports"
    )  # fmt: skip
    assert rows["nightly-report"].timezone == "UTC"  # TIME_ZONE


def test_a_second_sync_changes_nothing_keeps_a_pause_and_restarts_a_retimed_schedule():
    with override_settings(TASKS=tasks_setting(ISSUE_EXAMPLE)):
        sync(default_backend())
        Schedule.objects.filter(name="heartbeat").update(
            enabled=False, next_fire_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        Schedule.objects.filter(name="nightly-report").update(
            next_fire_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        report = sync(default_backend())
    assert (report.created, report.updated, report.deleted) == ([], [], [])
    changed = {**ISSUE_EXAMPLE, "nightly-report": {**ISSUE_EXAMPLE["nightly-report"],
                                                   "cron": "0 4 * * *"}}  # fmt: skip
    del changed["clear-sessions"]
    with override_settings(TASKS=tasks_setting(changed)):
        report = sync(default_backend())
    assert (report.updated, report.deleted) == (["nightly-report"], ["clear-sessions"])
    nightly = Schedule.objects.get(name="nightly-report")
    assert (nightly.cron, nightly.next_fire_at) == ("0 4 * * *", None)
    heartbeat = Schedule.objects.get(name="heartbeat")
    assert not heartbeat.enabled  # a pause made in the admin survives the sync
    assert heartbeat.next_fire_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_schedules_made_in_the_admin_are_left_alone_by_the_sync():
    Schedule.objects.create(name="by-hand", task_path="tests.app.tasks.noop", cron="@hourly")
    with override_settings(TASKS=tasks_setting({})):
        report = sync(default_backend())
    assert report.deleted == []
    assert Schedule.objects.filter(name="by-hand", from_code=False).exists()


def test_schedules_that_cannot_fire_are_check_errors_naming_them(declared):
    broken = {
        "missing-task": {"task": "tests.app.tasks.nope", "cron": "@daily"},
        "not-a-task": {"task": "tests.app.tasks.not_a_task", "cron": "@daily"},
        "unknown-command": {"command": "no_such_command", "interval": 60},
        "bad-queue": {"task": "tests.app.tasks.noop", "cron": "@daily", "queue": "nope"},
        "fine": {"command": "greet", "args": ["Ada"], "cron": "@daily"},
    }
    schedule(interval=0, name="declared-badly")(tasks.noop)
    try:
        with override_settings(TASKS=tasks_setting(broken)):
            messages = check_schedules()
    finally:
        unregister("default", "declared-badly")
    text = "\n".join(m.msg for m in messages)
    assert {m.id for m in messages} == {"offload.E004"}
    assert len(messages) == 5, text
    for name in ("missing-task", "not-a-task", "unknown-command", "bad-queue"):
        assert f"Schedule {name!r}" in text
    assert "@schedule['declared-badly']: interval must be" in text
    assert "Schedule 'fine'" not in text


def test_the_schedule_check_is_registered():
    assert check_schedules in checks.registry.registry.get_checks()


def test_the_decorator_needs_a_task():
    with pytest.raises(TypeError, match="@schedule goes above @task"):
        schedule(cron="@daily")(tasks.not_a_task)  # type: ignore[type-var]


def test_offload_schedules_lists_next_fire_times():
    with override_settings(TASKS=tasks_setting(ISSUE_EXAMPLE)):
        out = io.StringIO()
        call_command("offload", "schedules", "--sync", "--count", "3", stdout=out)
    text = out.getvalue()
    assert "nightly-report  [from code]" in text
    assert "runs      manage.py clearsessions" in text
    assert "when      every 30s, catch-up once" in text
    nightly = text.split("nightly-report")[1]
    next_line = next(line for line in nightly.splitlines() if line.startswith("  next"))
    assert next_line.count("T03:00:00+00:00") == 3


def test_offload_schedules_says_when_there_are_none():
    out = io.StringIO()
    call_command("offload", "schedules", stdout=out)
    assert out.getvalue().startswith("No schedules.")


def test_paused_schedules_are_listed_without_fire_times():
    row = Schedule.objects.create(
        name="paused", task_path="tests.app.tasks.noop", cron="@hourly", enabled=False
    )
    ScheduleFire.objects.create(
        schedule=row, fire_at=datetime(2026, 1, 1, tzinfo=UTC),
        fired_at=datetime(2026, 1, 1, tzinfo=UTC), outcome="enqueued",
    )  # fmt: skip
    out = io.StringIO()
    call_command("offload", "schedules", stdout=out)
    assert "paused  [paused]" in out.getvalue()
    assert "  next" not in out.getvalue()


BAD_CRON = {
    **ISSUE_EXAMPLE,
    "broken": {"task": "tests.app.tasks.echo", "cron": "61 * * * *"},
}


def test_one_bad_schedule_stops_no_enqueue_and_no_other_schedule(caplog):
    with override_settings(TASKS=tasks_setting(BAD_CRON)):
        backend = default_backend()
        result = tasks.add.enqueue(1, 2)  # raised BackendMisconfigured before
        with caplog.at_level(logging.ERROR, logger="offload.scheduler"):
            report = sync(backend)  # what a worker runs at start
        messages = check_schedules()
    [logged] = [r for r in caplog.records if r.name == "offload.scheduler"]
    assert "OPTIONS['SCHEDULES']['broken']: cron '61 * * * *'" in logged.getMessage()
    assert backend.get_result(result.id).status == "READY"
    assert sorted(report.created) == ["clear-sessions", "heartbeat", "nightly-report"]
    assert report.broken == ["broken"]
    assert [m.id for m in messages] == ["offload.E004"]
    assert "OPTIONS['SCHEDULES']['broken']: cron '61 * * * *'" in messages[0].msg
    held = Schedule.objects.get(name="broken")  # shown in the admin, never fired
    assert (held.task_path, held.from_code, held.next_fire_at.year) == (
        "tests.app.tasks.echo", True, 9000,
    )  # fmt: skip
    assert held.last_error == messages[0].msg.removeprefix("Schedule 'broken': ")


def test_the_admin_lists_a_schedule_broken_in_settings_with_its_error():
    with override_settings(TASKS=tasks_setting(BAD_CRON)):
        sync(default_backend())
        client = Client()
        client.force_login(make_user("root", superuser=True))
        page = client.get(reverse("admin:offload_schedule_changelist"))
    assert page.status_code == 200
    assert "cron &#x27;61 * * * *&#x27;" in page.text


def test_a_schedule_broken_in_settings_keeps_its_row_held_with_its_error_until_fixed():
    good = {"broken": {"task": "tests.app.tasks.echo", "cron": "1 * * * *"}}
    with override_settings(TASKS=tasks_setting(good)):
        sync(default_backend())
    with override_settings(TASKS=tasks_setting(BAD_CRON)):
        sync(default_backend())
        stored = check_stored_schedules(databases=["default"])
    row = Schedule.objects.get(name="broken")
    assert row.cron == "1 * * * *"  # kept, with its fire history
    assert "cron '61 * * * *'" in row.last_error
    assert row.next_fire_at is not None
    assert row.next_fire_at.year == 9000  # never fires
    assert any("'broken' cannot fire" in m.msg for m in stored)
    with override_settings(TASKS=tasks_setting(good)):
        report = sync(default_backend())
    row = Schedule.objects.get(name="broken")
    assert report.updated == ["broken"]
    assert (row.last_error, row.next_fire_at) == ("", None)


def test_offload_schedules_lists_what_settings_define_before_any_sync():
    with override_settings(TASKS=tasks_setting(BAD_CRON)):
        out = io.StringIO()
        call_command("offload", "schedules", stdout=out)
    text = out.getvalue()
    assert not Schedule.objects.exists()  # listing syncs nothing
    assert "nightly-report  [from code, not synced yet]" in text
    assert "runs      tests.app.tasks.echo(full=true)" in text
    assert 'runs      tests.app.tasks.echo("web")' in text
    assert "runs      manage.py clearsessions\n" in text
    assert "broken  [from code, broken]" in text
    assert "  error     OPTIONS['SCHEDULES']['broken']: cron '61 * * * *'" in text
    nightly = text.split("nightly-report")[1]
    assert next(line for line in nightly.splitlines() if line.startswith("  next"))


def test_offload_schedules_shows_code_changed_since_the_last_sync_and_admin_rows():
    Schedule.objects.create(
        name="by-hand", task_path="tests.app.tasks.echo", cron="@hourly", args=[1],
        kwargs={"to": "ops"},
    )  # fmt: skip
    with override_settings(TASKS=tasks_setting(ISSUE_EXAMPLE)):
        sync(default_backend())
    changed = {**ISSUE_EXAMPLE, "heartbeat": {**ISSUE_EXAMPLE["heartbeat"], "interval": 60}}
    with override_settings(TASKS=tasks_setting(changed)):
        out = io.StringIO()
        call_command("offload", "schedules", stdout=out)
    text = out.getvalue()
    assert "heartbeat  [from code, changed in code since the last sync]" in text
    assert "when      every 60s" in text.split("heartbeat")[1]
    assert "by-hand  [active]" in text
    assert 'runs      tests.app.tasks.echo(1, to="ops")' in text
