"""The Schedule admin: create, edit, pause, resume, run now, next fire times, last runs."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from offload.models import Schedule, ScheduleFire, TaskRecord
from offload.schedules.firing import Scheduler

CHANGELIST = "admin:offload_schedule_changelist"


@pytest.fixture
def client() -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    browser = Client()
    browser.force_login(user)
    return browser


def form(**fields: object) -> dict[str, object]:
    data = {
        "name": "job", "backend": "default", "enabled": "on", "task_path": "tests.app.tasks.noop",
        "command": "", "args": "[]", "kwargs": "{}", "queue_name": "", "priority": "",
        "cron": "*/5 * * * *", "interval": "", "timezone": "Europe/Berlin", "catch_up": "once",
    }  # fmt: skip
    data.update(fields)
    return data


def test_create_and_edit_a_schedule(client):
    response = client.post(reverse("admin:offload_schedule_add"), form())
    assert response.status_code == 302, response.content.decode()[:2000]
    row = Schedule.objects.get(name="job")
    assert (row.cron, row.timezone, row.from_code, row.next_fire_at) == (
        "*/5 * * * *", "Europe/Berlin", False, None
    )  # fmt: skip
    Schedule.objects.filter(pk=row.pk).update(next_fire_at=datetime(2026, 1, 1, tzinfo=UTC))
    url = reverse("admin:offload_schedule_change", args=[row.pk])
    assert client.post(url, form(cron="@hourly")).status_code == 302
    row.refresh_from_db()
    # A new timing starts again from its next tick.
    assert (row.cron, row.next_fire_at) == ("0 * * * *", None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "*/5 * *"}, "must have five fields"),
        ({"cron": "", "interval": ""}, "Give a cron expression or an interval."),
        ({"interval": "30"}, "not both"),
        ({"timezone": "Mars/Base"}, "not a known IANA time zone"),
        ({"command": "greet"}, "exactly one of a task path and a command"),
    ],
)
def test_bad_input_is_refused_with_the_reason(client, fields, message):
    response = client.post(reverse("admin:offload_schedule_add"), form(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Schedule.objects.exists()


def test_change_page_shows_next_five_fire_times_and_last_runs(client, backend):
    row = Schedule.objects.create(
        name="job", task_path="tests.app.tasks.noop", cron="0 * * * *", timezone="UTC"
    )
    scheduler = Scheduler(backend)
    scheduler.tick(datetime(2026, 1, 1, 9, 30, tzinfo=UTC))
    scheduler.tick(datetime(2026, 1, 1, 10, 0, 1, tzinfo=UTC))
    page = client.get(reverse("admin:offload_schedule_change", args=[row.pk])).content.decode()
    assert page.count(":00:00+00:00</li>") == 5  # the next five fire times
    assert "2026-01-01T10:00:00+00:00 Enqueued task" in page
    assert ": READY" in page


def test_code_schedules_keep_their_definition_read_only(client):
    row = Schedule.objects.create(
        name="code", task_path="tests.app.tasks.noop", cron="@daily", from_code=True
    )
    page = client.get(reverse("admin:offload_schedule_change", args=[row.pk])).content.decode()
    assert 'name="cron"' not in page
    assert 'name="enabled"' in page  # still pausable


def test_pause_resume_and_run_now_actions(client):
    row = Schedule.objects.create(
        name="job", task_path="tests.app.tasks.add", args=[1, 2], cron="@daily",
        next_fire_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    url = reverse(CHANGELIST)

    def act(action: str) -> None:
        response = client.post(url, {"action": action, "_selected_action": [row.pk]})
        assert response.status_code == 302

    act("pause")
    row.refresh_from_db()
    assert not row.enabled
    act("resume")
    row.refresh_from_db()
    assert row.enabled
    assert row.next_fire_at is None  # resumes from its next tick, without catching up
    act("run_now")
    fire = ScheduleFire.objects.get(schedule=row)
    assert fire.outcome == "manual"
    assert TaskRecord.objects.get(pk=fire.task_id).args == [1, 2]


def test_resuming_in_the_form_starts_from_the_next_tick(client):
    row = Schedule.objects.create(
        name="job", task_path="tests.app.tasks.noop", cron="*/5 * * * *",
        timezone="Europe/Berlin", enabled=False, next_fire_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    url = reverse("admin:offload_schedule_change", args=[row.pk])
    assert client.post(url, form(enabled="")).status_code == 302  # still paused: kept
    row.refresh_from_db()
    assert row.next_fire_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert client.post(url, form()).status_code == 302
    row.refresh_from_db()
    assert (row.enabled, row.next_fire_at) == (True, None)
