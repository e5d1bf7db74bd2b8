"""The Schedule admin, attacked through the real admin with Django's test client: a
user with one schedule permission each (view, add, change, delete) tries every
action and every trick, and nothing runs that settings did not allow."""

import sys
from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from offload.models import Schedule, ScheduleFire, TaskRecord
from tests.admin_factory import make_task, make_user
from tests.helpers import drain, override_options

CHANGELIST = "admin:offload_schedule_changelist"
PERMISSIONS = ("view", "add", "change", "delete")
SHELL = "import pathlib; pathlib.Path('owned').write_text('owned')"


def form(**fields: object) -> dict[str, object]:
    data = {
        "name": "job", "backend": "default", "enabled": "on", "task_path": "tests.app.tasks.noop",
        "command": "", "args": "[]", "kwargs": "{}", "queue_name": "", "priority": "",
        "cron": "*/5 * * * *", "interval": "", "timezone": "UTC", "catch_up": "once",
    }  # fmt: skip
    data.update(fields)
    return data


# (what the attacker posts, a piece of the error the form must show)
TRICKS = [
    ({"task_path": "", "command": "shell", "args": f'["-c", "{SHELL}"]'}, "not allowed"),
    ({"task_path": "", "command": "flush", "args": '["--no-input"]'}, "not allowed"),
    ({"task_path": "", "command": "no_such_command"}, "not allowed"),
    (
        {"task_path": "offload.commands.run_command", "args": f'["shell", "-c", "{SHELL}"]'},
        "not allowed",
    ),
    ({"task_path": "offload.command_tasks.run_command", "args": '["flush"]'}, "not allowed"),
    ({"task_path": "os.system", "args": '["id"]'}, "not allowed"),
    ({"task_path": "tests.app.canary.chirp"}, "not allowed"),
    ({"task_path": "tests.app.tasks.no_such_task"}, "does not import"),
    ({"task_path": "tests.app.tasks.not_a_task"}, "not a django.tasks Task"),
    ({"queue_name": "no-such-queue"}, "Not in the backend&#x27;s QUEUES"),
    ({"priority": "32000"}, "A whole number from -100 to 100."),
    ({"backend": "no-such-backend"}, "is not an offload backend"),
    ({"cron": "0 0 */30 2 0#5"}, "never fires"),
]


def client_with(permission: str) -> Client:
    client = Client()
    client.force_login(make_user(f"only-{permission}", perms=(f"{permission}_schedule",)))
    return client


def allowed_row(**fields: object) -> Schedule:
    values: dict[str, object] = {
        "name": "existing", "task_path": "tests.app.tasks.add", "args": [1, 2],
        "cron": "@daily", "timezone": "UTC", "next_fire_at": datetime(2026, 1, 1, tzinfo=UTC),
    }  # fmt: skip
    values.update(fields)
    return Schedule.objects.create(**values)


def nothing_ran() -> None:
    assert not TaskRecord.objects.exists()
    assert not ScheduleFire.objects.exists()
    assert "tests.app.canary" not in sys.modules


@pytest.mark.parametrize("permission", PERMISSIONS)
@pytest.mark.parametrize(("fields", "message"), TRICKS)
def test_no_trick_saves_a_schedule(permission, fields, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = client_with(permission)
    row = allowed_row()
    before = Schedule.objects.values().get(pk=row.pk)
    add = client.post(reverse("admin:offload_schedule_add"), form(**fields))
    change = client.post(
        reverse("admin:offload_schedule_change", args=[row.pk]), form(name="existing", **fields)
    )
    if permission == "add":
        assert add.status_code == 200
        assert message in add.content.decode(), add.content.decode()[:3000]
    else:
        assert add.status_code == 403
    if permission == "change":
        assert change.status_code == 200
        assert message in change.content.decode(), change.content.decode()[:3000]
    else:
        # The view and delete users see the page read-only; the add user may not see it.
        assert change.status_code in (200, 403, 302)
    assert list(Schedule.objects.values()) == [before]
    nothing_ran()
    assert not (tmp_path / "owned").exists()


def test_allowed_schedules_save_for_add_and_change_users():
    adder = client_with("add")
    assert adder.post(reverse("admin:offload_schedule_add"), form()).status_code == 302
    row = Schedule.objects.get(name="job")
    changer = client_with("change")
    url = reverse("admin:offload_schedule_change", args=[row.pk])
    response = changer.post(url, form(task_path="", command="greet", args='["Ada"]'))
    assert response.status_code == 302, response.content.decode()[:3000]
    row.refresh_from_db()
    assert (row.command, row.args) == ("greet", ["Ada"])


def test_a_wide_task_allow_list_still_refuses_the_command_tasks():
    client = client_with("add")
    with override_options(SCHEDULE_ADMIN_TASKS=["offload", "tests.app.tasks"]):
        for path in ("offload.commands.run_command", "offload.command_tasks.run_command",
                     "offload.command_tasks.run_allowed_command"):  # fmt: skip
            response = client.post(
                reverse("admin:offload_schedule_add"), form(task_path=path, args='["flush"]')
            )
            assert response.status_code == 200
            assert "runs management commands" in response.content.decode()
    assert not Schedule.objects.exists()


def act(client: Client, action: str, rows: list[Schedule]) -> int:
    response = client.post(
        reverse(CHANGELIST), {"action": action, "_selected_action": [r.pk for r in rows]}
    )
    return response.status_code


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_only_the_change_permission_runs_actions(permission):
    client = client_with(permission)
    row = allowed_row()
    statuses = {action: act(client, action, [row]) for action in ("run_now", "pause", "resume")}
    row.refresh_from_db()
    fires = ScheduleFire.objects.filter(schedule=row)
    entries = LogEntry.objects.filter(object_id=str(row.pk))
    if permission == "change":
        assert fires.get().outcome == "manual"
        assert TaskRecord.objects.get(pk=fires.get().task_id).args == [1, 2]
        assert (row.enabled, row.next_fire_at) == (True, None)  # paused, then resumed
        assert [e.change_message for e in entries.order_by("pk")] == [
            f"Ran now (admin action): task {fires.get().task_id}.",
            "Paused (admin action).",
            "Resumed from its next tick (admin action).",
        ]
    else:
        assert not fires.exists(), statuses
        assert not TaskRecord.objects.exists()
        assert (row.enabled, row.next_fire_at) == (True, datetime(2026, 1, 1, tzinfo=UTC))
        assert not entries.exists()
        if permission == "add":
            assert set(statuses.values()) == {403}  # no view permission: no list at all


def test_run_now_never_imports_a_path_that_is_not_allowed():
    client = client_with("change")
    rows = [
        allowed_row(name="canary", task_path="tests.app.canary.chirp"),
        allowed_row(name="shell", task_path="", command="shell", args=["-c", SHELL]),
        allowed_row(name="runner", task_path="offload.commands.run_command", args=["flush"]),
    ]
    assert act(client, "run_now", rows) == 302
    nothing_ran()
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert page.count("is not allowed for schedules made in the admin") == 3
    assert not LogEntry.objects.exists()


def test_a_schedule_from_code_is_trusted_by_run_now():
    client = client_with("change")
    row = allowed_row(name="code", task_path="", command="greet", args=["Ada"], from_code=True)
    with override_options(SCHEDULE_ADMIN_COMMANDS=[]):
        assert act(client, "run_now", [row]) == 302
    task = TaskRecord.objects.get()
    assert task.task_path == "offload.command_tasks.run_command"


def test_actions_are_bounded():
    client = client_with("change")
    rows = [allowed_row(name=f"s{i}") for i in range(3)]
    with override_options(SCHEDULE_ADMIN_ACTION_LIMIT=2):
        assert act(client, "pause", rows) == 302
        page = client.get(reverse(CHANGELIST)).content.decode()
    assert "Select at most 2 schedules" in page
    assert Schedule.objects.filter(enabled=True).count() == 3
    assert not LogEntry.objects.exists()
    assert act(client, "pause", rows[:2]) == 302
    assert Schedule.objects.filter(enabled=False).count() == 2
    assert LogEntry.objects.count() == 2


def test_every_schedule_page_carries_the_csp_and_masks_secrets():
    client = Client()
    client.force_login(make_user("root", superuser=True))
    row = allowed_row(
        name="secretive", task_path="", command="greet",
        args=["Ada", "--token=s3cret-arg", "--password", "s3cret-next"],
        kwargs={"api_key": "s3cret-kw", "nested": {"password": "s3cret-deep"}, "shout": True},
    )  # fmt: skip
    code = allowed_row(
        name="from-code", kwargs={"auth_token": "s3cret-code"}, args=["--secret=s3cret-c"],
        from_code=True,
    )  # fmt: skip
    pages = [
        reverse(CHANGELIST),
        reverse("admin:offload_schedule_add"),
        reverse("admin:offload_schedule_change", args=[row.pk]),
        reverse("admin:offload_schedule_change", args=[code.pk]),
        reverse("admin:offload_schedule_history", args=[row.pk]),
        reverse("admin:offload_schedule_delete", args=[row.pk]),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response.headers["Content-Security-Policy"], url
        assert "s3cret" not in response.content.decode(), url
    # Saving the form with the masks in place keeps the stored secrets.
    change = client.get(reverse("admin:offload_schedule_change", args=[row.pk]))
    shown = change.context["adminform"].form
    data = form(
        name="secretive", task_path="", command="greet", cron="@daily",
        args=shown["args"].value(), kwargs=shown["kwargs"].value(),
    )  # fmt: skip
    url = reverse("admin:offload_schedule_change", args=[row.pk])
    assert client.post(url, data).status_code == 302
    row.refresh_from_db()
    assert row.args == ["Ada", "--token=s3cret-arg", "--password", "s3cret-next"]
    assert row.kwargs["nested"] == {"password": "s3cret-deep"}
    assert row.kwargs["api_key"] == "s3cret-kw"


def test_the_old_command_task_path_runs_only_allowed_commands(tmp_path, monkeypatch):
    from offload.commands import run_command

    monkeypatch.chdir(tmp_path)
    refused = run_command.enqueue("shell", "-c", SHELL)
    allowed = run_command.enqueue("greet", "Ada")
    drain()
    refused_row = TaskRecord.objects.get(pk=refused.id)
    assert refused_row.task_path == "offload.command_tasks.run_allowed_command"
    assert refused_row.status == "FAILED"
    assert refused_row.errors[-1]["exception_class_path"] == "offload.exceptions.ScheduleNotAllowed"
    assert not (tmp_path / "owned").exists()
    assert TaskRecord.objects.get(pk=allowed.id).status == "SUCCESSFUL"


def test_a_stored_task_naming_the_old_path_is_restricted_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stored = make_task(task_path="offload.commands.run_command", args=["shell", "-c", SHELL])
    drain()
    stored.refresh_from_db()
    assert stored.status == "FAILED"
    assert not (tmp_path / "owned").exists()


def test_a_code_schedule_on_the_old_command_path_is_a_check_error():
    from django.conf import settings
    from django.test import override_settings

    from offload.schedules.checks import check_schedules

    default = {**settings.TASKS["default"]}
    default["OPTIONS"] = {
        **default["OPTIONS"],
        "SCHEDULES": {
            "old": {"task": "offload.commands.run_command", "args": ["clearsessions"],
                    "cron": "@daily"},
            "allowed": {"task": "offload.commands.run_command", "args": ["greet"],
                        "cron": "@daily"},
        },
    }  # fmt: skip
    with override_settings(TASKS={**settings.TASKS, "default": default}):
        messages = check_schedules()
    assert [m.msg for m in messages] == [
        "Schedule 'old': task 'offload.commands.run_command' runs only the commands in "
        "OPTIONS['SCHEDULE_ADMIN_COMMANDS']; give the command with 'command' instead."
    ]


def test_an_allowed_name_must_still_exist():
    client = client_with("add")
    with override_options(
        SCHEDULE_ADMIN_COMMANDS=["ghost"], SCHEDULE_ADMIN_TASKS=["tests.app.tasks.ghost"]
    ):
        command = client.post(reverse("admin:offload_schedule_add"),
                              form(task_path="", command="ghost"))  # fmt: skip
        task = client.post(reverse("admin:offload_schedule_add"),
                           form(task_path="tests.app.tasks.ghost"))  # fmt: skip
    assert "is not a management command of this project" in command.content.decode()
    assert "does not import" in task.content.decode()
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    "query",
    [
        "name__regex=[",
        "args__contains=x",
        "catch_up__exact=never",
        "backend=%00",
        "enabled__exact=2",
    ],
)
def test_the_schedule_list_refuses_what_its_filters_do_not_offer(query: str) -> None:
    allowed_row()
    page = client_with("view").get(f"{reverse('admin:offload_schedule_changelist')}?{query}")
    assert page.status_code == 400, query
    assert Schedule.objects.count() == 1


def test_the_schedule_list_still_takes_its_own_filters_and_search() -> None:
    allowed_row()
    url = reverse("admin:offload_schedule_changelist")
    client = client_with("view")
    for query in ("enabled__exact=1", "from_code__exact=0", "q=exist"):
        page = client.get(f"{url}?{query}")
        assert page.status_code == 200, query
        assert "existing" in page.content.decode(), query


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ('["a\\u0000b"]', "{}", "NUL"),
        ("[]", '{"k": "\\ud800"}', "surrogate"),
        ("[" * 40 + "]" * 40, "{}", "levels deep"),
    ],
)
def test_arguments_no_database_stores_are_a_form_error(args, kwargs, message):
    client = client_with("add")
    with override_options(SCHEDULE_ADMIN_TASKS=["tests.app.tasks"]):
        page = client.post(
            reverse("admin:offload_schedule_add"),
            form(task_path="tests.app.tasks.echo", args=args, kwargs=kwargs),
        )
    assert page.status_code == 200
    assert message in page.content.decode()
    assert not Schedule.objects.exists()
