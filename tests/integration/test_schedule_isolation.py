"""One schedule's fault stays its own: a cron expression that never fires, a task that
does not import or one not allowed is noted on its row, and the other schedules,
the scheduler, the admin page and ``offload schedules`` go on."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core import checks
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils.html import escape

from offload.models import Schedule, ScheduleFire
from offload.schedules.firing import Scheduler
from offload.schedules.thread import start_scheduler
from tests.admin_factory import make_user
from tests.helpers import wait_for

NEVER = "0 0 */30 2 0#5"  # the 1st of February that is its month's fifth Sunday


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def broken_rows() -> list[Schedule]:
    """Rows as an older release, an edit through the ORM or a stored row could leave them."""
    due = at(2026, 1, 5, 9, 0)
    return [
        Schedule.objects.create(
            name="never", task_path="tests.app.tasks.noop", cron=NEVER, next_fire_at=due
        ),
        Schedule.objects.create(
            name="gone", task_path="tests.app.tasks.no_longer_here", interval=60, next_fire_at=due
        ),
        Schedule.objects.create(
            name="shell", command="shell", args=["-c", "print(1)"], interval=60, next_fire_at=due
        ),
    ]


def test_broken_schedules_beside_a_healthy_one_that_keeps_firing(backend):
    broken = broken_rows()
    Schedule.objects.create(name="healthy", task_path="tests.app.tasks.noop", interval=60)
    scheduler = Scheduler(backend)
    scheduler.tick(at(2026, 1, 5, 9, 59, 30))
    for minute in (0, 1, 2):
        fired = scheduler.tick(at(2026, 1, 5, 10, minute, 1))
        assert [f.schedule for f in fired] == ["healthy"]
    assert list(
        ScheduleFire.objects.filter(schedule__name="healthy").values_list("fire_at", flat=True)
    ) == [at(2026, 1, 5, 10, m) for m in (0, 1, 2)]  # fmt: skip
    errors = dict(Schedule.objects.values_list("name", "last_error"))
    assert "never fires" in errors["never"]
    assert "does not import" in errors["gone"]
    assert "is not allowed for schedules made in the admin" in errors["shell"]
    assert errors["healthy"] == ""
    assert not ScheduleFire.objects.filter(schedule__in=broken).exists()
    assert all(r.last_error_at for r in Schedule.objects.filter(pk__in=[b.pk for b in broken]))


def test_a_fixed_schedule_forgets_its_error(backend):
    [never, *_] = broken_rows()
    scheduler = Scheduler(backend)
    scheduler.tick(at(2026, 1, 5, 10, 0, 1))
    never.refresh_from_db()
    assert never.last_error
    Schedule.objects.filter(pk=never.pk).update(cron="* * * * *")
    scheduler.tick(at(2026, 1, 5, 10, 1, 1))
    never.refresh_from_db()
    assert (never.last_error, never.last_error_at) == ("", None)
    assert ScheduleFire.objects.filter(schedule=never).exists()


def test_the_scheduler_thread_keeps_firing_beside_a_never_firing_cron(backend):
    broken_rows()
    Schedule.objects.create(name="healthy", task_path="tests.app.tasks.noop", interval=1)
    thread = start_scheduler(backend, owner="isolation-test")
    try:
        wait_for(
            lambda: ScheduleFire.objects.filter(schedule__name="healthy").count() >= 3,
            timeout=30,
            what="three ticks of the healthy schedule",
        )
    finally:
        thread.stop()
    assert thread.synced
    assert "never fires" in Schedule.objects.get(name="never").last_error


def test_the_admin_and_offload_schedules_show_the_error_without_crashing(backend):
    broken_rows()
    Scheduler(backend).tick(at(2026, 1, 5, 10, 0, 1))
    client = Client()
    client.force_login(make_user("root", superuser=True))
    assert client.get(reverse("admin:offload_schedule_changelist")).status_code == 200
    for row in Schedule.objects.all():
        page = client.get(reverse("admin:offload_schedule_change", args=[row.pk]))
        assert page.status_code == 200, row.name
        assert escape(row.last_error[:40]) in page.content.decode(), row.name
    out = io.StringIO()
    call_command("offload", "schedules", stdout=out)
    text = out.getvalue()
    assert "never fires" in text
    assert "does not import" in text
    assert text.count("  error     ") == 3


def test_the_database_check_warns_about_each_stored_schedule_that_cannot_fire():
    broken_rows()
    Schedule.objects.create(name="healthy", task_path="tests.app.tasks.noop", interval=60)
    messages = [
        m for m in checks.run_checks(databases=["default"]) if m.id == "offload.W004"
    ]  # fmt: skip
    text = "\n".join(m.msg for m in messages)
    assert len(messages) == 2, text  # "gone" fails only when it fires
    assert "Schedule 'never' cannot fire: cron" in text
    assert "Schedule 'shell' cannot fire: command 'shell' is not allowed" in text


def test_model_validation_refuses_a_cron_that_never_fires():
    row = Schedule(name="never", task_path="tests.app.tasks.noop", cron=NEVER)
    with pytest.raises(ValidationError, match="never fires"):
        row.full_clean()


def test_a_code_schedule_that_never_fires_is_a_check_error():
    from offload.schedules.checks import check_schedules

    tasks = {
        "default": {
            "BACKEND": "offload.backend.DatabaseBackend",
            "OPTIONS": {"SCHEDULES": {"never": {"task": "tests.app.tasks.noop", "cron": NEVER}}},
        }
    }
    with override_settings(TASKS=tasks):
        from django.tasks import task_backends

        backend = task_backends["default"]
        problems = backend.config.problems  # type: ignore[attr-defined]
        messages = list(backend.check())
        schedule_messages = check_schedules()
    assert problems == []  # the schedule's error, not the backend's
    assert not any("never fires" in m.msg for m in messages)
    assert [m.id for m in schedule_messages] == ["offload.E004"]  # reported once, as its own
    assert "never fires" in schedule_messages[0].msg


def test_an_error_is_written_at_most_once_a_minute_while_it_lasts(backend):
    [never, *_] = broken_rows()
    scheduler = Scheduler(backend)
    start = at(2026, 1, 5, 10, 0, 1)
    scheduler.tick(start)
    first = Schedule.objects.get(pk=never.pk).last_error_at
    scheduler.tick(start + timedelta(seconds=30))
    assert Schedule.objects.get(pk=never.pk).last_error_at == first
    scheduler.tick(start + timedelta(seconds=61))
    assert Schedule.objects.get(pk=never.pk).last_error_at == start + timedelta(seconds=61)
