"""The admin's task, worker and schedule pages with two offload backends on two
databases ("default" on default, "separate" on queue): ``?backend=separate``
lists, opens, changes and logs the rows of the queue database, links keep the
choice, and an unknown alias is a 400."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from offload.models import Schedule, TaskRecord
from offload.states import State
from tests.admin_factory import confirm, make_failed, make_task, make_user, make_worker

# On each test, not the module: the suite's own mark on every test would win.
BOTH_DATABASES = pytest.mark.django_db(transaction=True, databases=["default", "queue"])
SEPARATE = "?backend=separate"


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def _statuses(using: str) -> dict[str, str]:
    return dict(TaskRecord.objects.using(using).values_list("task_path", "status"))


@BOTH_DATABASES
def test_a_task_of_the_separate_backend_is_listed_there_only(operator):
    make_task(task_path="tests.app.tasks.send_email")
    task = make_task("queue", task_path="tests.app.tasks.add", backend="separate")
    url = reverse("admin:offload_taskrecord_changelist")

    shown = operator.get(url + SEPARATE)
    assert shown.status_code == 200
    assert "tests.app.tasks.add" in shown.text
    assert "tests.app.tasks.send_email" not in shown.text
    assert "showing <strong>separate</strong> (database queue)" in shown.text
    link = reverse("admin:offload_taskrecord_change", args=[task.pk]) + SEPARATE
    assert f'href="{link}"' in shown.text

    default = operator.get(url)
    assert "tests.app.tasks.send_email" in default.text
    assert "tests.app.tasks.add" not in default.text
    # A status list and a filter: the filter's links keep the choice.
    ready = operator.get(
        reverse("admin:offload_readytask_changelist") + SEPARATE + "&queue=default"
    )
    assert ready.status_code == 200
    assert "tests.app.tasks.add" in ready.text
    assert "backend=separate&amp;queue=" in ready.text


@BOTH_DATABASES
def test_its_page_opens_and_retry_acts_on_its_database(operator):
    other = [{"exception_class_path": "builtins.KeyError", "traceback": "KeyError: on default\n"}]
    make_failed(task_path="tests.app.tasks.send_email", errors=other)  # on default too
    failed = make_failed("queue", task_path="tests.app.tasks.add", backend="separate")
    # The failed list's messages are read from the same database as its rows.
    listed = operator.get(reverse("admin:offload_failedtask_changelist") + SEPARATE)
    assert "<code>ValueError</code> boom 3" in listed.text
    assert "on default" not in listed.text
    page = operator.get(reverse("admin:offload_failedtask_change", args=[failed.pk]) + SEPARATE)
    assert page.status_code == 200
    assert "tests.app.tasks.add" in page.text
    retry = reverse("admin:offload_failedtask_operate", args=[failed.pk, "retry"]) + SEPARATE
    assert f'action="{retry}"' in page.text

    done = operator.post(retry)
    assert done.status_code == 302
    # READY now: its page under all tasks, on the same backend.
    assert (
        done["Location"] == reverse("admin:offload_taskrecord_change", args=[failed.pk]) + SEPARATE
    )
    assert _statuses("queue") == {"tests.app.tasks.add": State.READY}
    assert _statuses("default") == {"tests.app.tasks.send_email": State.FAILED}
    entry = LogEntry.objects.get()
    assert entry.object_repr == f"#{failed.pk} tests.app.tasks.add (database queue)"
    assert entry.change_message == "Retried."


@BOTH_DATABASES
def test_cancel_and_run_again_act_on_the_database_chosen(operator):
    make_task(task_path="tests.app.tasks.send_email")
    ready = make_task("queue", task_path="tests.app.tasks.add", backend="separate")
    operator.post(reverse("admin:offload_taskrecord_operate", args=[ready.pk, "cancel"]) + SEPARATE)
    assert _statuses("queue") == {"tests.app.tasks.add": State.CANCELLED}
    assert _statuses("default") == {"tests.app.tasks.send_email": State.READY}

    # A list action, from the list of that backend.
    url = reverse("admin:offload_taskrecord_changelist") + SEPARATE
    data = {"action": "run_again", "index": "0", "_selected_action": [str(ready.pk)]}
    assert operator.post(url, data).status_code == 302
    copies = TaskRecord.objects.using("queue").exclude(pk=ready.pk)
    assert [(c.task_path, c.status) for c in copies] == [("tests.app.tasks.add", State.READY)]
    assert TaskRecord.objects.using("default").count() == 1

    # Delete asks first; the confirmation posts back to the same backend's list.
    data = {"action": "delete_tasks", "index": "0", "_selected_action": [str(ready.pk)]}
    assert confirm(operator, url, operator.post(url, data)).status_code == 302
    assert not TaskRecord.objects.using("queue").filter(pk=ready.pk).exists()
    assert TaskRecord.objects.using("default").count() == 1


@BOTH_DATABASES
def test_worker_rows_of_each_database_are_listed(operator):
    make_worker("dhost:1:a", hostname="dhost")
    make_worker("qhost:2:b", "queue", hostname="qhost", backend="separate")
    running = make_task(
        "queue", backend="separate", status=State.RUNNING, attempt=1, lease_owner="qhost:2:b"
    )
    url = reverse("admin:offload_workerrecord_changelist")
    default, separate = operator.get(url), operator.get(url + SEPARATE)
    assert "dhost" in default.text
    assert "qhost" not in default.text
    assert "qhost" in separate.text
    assert "dhost" not in separate.text
    # Its running task, counted and linked on its database.
    assert "?worker=qhost%3A2%3Ab&amp;backend=separate" in separate.text
    change = reverse("admin:offload_workerrecord_change", args=[quote("qhost:2:b")])
    assert change in separate.text
    assert "backend%3Dseparate" in separate.text
    page = operator.get(change + SEPARATE)
    assert page.status_code == 200
    task_link = reverse("admin:offload_taskrecord_change", args=[running.pk]) + SEPARATE
    assert task_link in page.text
    assert operator.get(change).status_code == 302  # not on default: "does not exist"


def _schedule_form(**fields: object) -> dict[str, object]:
    data = {
        "name": "job", "backend": "separate", "enabled": "on",
        "task_path": "tests.app.tasks.noop", "command": "", "args": "[]", "kwargs": "{}",
        "queue_name": "", "priority": "", "cron": "*/5 * * * *", "interval": "",
        "timezone": "UTC", "catch_up": "once",
    }  # fmt: skip
    data.update(fields)
    return data


@BOTH_DATABASES
def test_a_schedule_of_the_separate_backend_is_listed_and_edited_there(operator):
    add = reverse("admin:offload_schedule_add")
    made = operator.post(add + SEPARATE, _schedule_form())
    assert made.status_code == 302, made.text[:2000]
    row = Schedule.objects.using("queue").get(name="job")
    assert not Schedule.objects.using("default").exists()
    assert made["Location"] == reverse("admin:offload_schedule_changelist") + SEPARATE

    url = reverse("admin:offload_schedule_changelist")
    listed = operator.get(url + SEPARATE)
    assert listed.status_code == 200
    assert ">job<" in listed.text
    assert "showing <strong>separate</strong> (database queue)" in listed.text
    assert ">job<" not in operator.get(url).text

    change = reverse("admin:offload_schedule_change", args=[row.pk]) + SEPARATE
    assert operator.get(change).status_code == 200
    assert operator.post(change, _schedule_form(cron="@hourly")).status_code == 302
    row.refresh_from_db()
    assert row.cron == "0 * * * *"
    # The (backend, name) constraint is checked on that database: a form error, not a 500.
    again = operator.post(add + SEPARATE, _schedule_form())
    assert again.status_code == 200
    assert "already exists" in again.text
    # A schedule of a backend whose scheduler reads another database is refused.
    wrong = operator.post(add, _schedule_form(name="elsewhere"))
    assert wrong.status_code == 200
    assert "keeps its schedules on database &#x27;queue&#x27;" in wrong.text

    data = {"action": "pause", "index": "0", "_selected_action": [str(row.pk)]}
    assert operator.post(url + SEPARATE, data).status_code == 302
    row.refresh_from_db()
    assert row.enabled is False
    assert LogEntry.objects.filter(change_message="Paused (admin action).").count() == 1


@pytest.mark.parametrize(
    "name",
    [
        "admin:offload_taskrecord_changelist",
        "admin:offload_failedtask_changelist",
        "admin:offload_workerrecord_changelist",
        "admin:offload_schedule_changelist",
        "admin:offload_schedule_add",
    ],
)
@BOTH_DATABASES
def test_an_unknown_backend_is_a_400_that_names_the_known_ones(operator, name):
    refused = operator.get(reverse(name) + "?backend=nope")
    assert refused.status_code == 400
    assert "No offload backend 'nope' in TASKS (there are: default, separate)." in refused.text


@BOTH_DATABASES
def test_an_unknown_backend_on_a_task_page_and_operation(operator):
    task = make_task()
    page = reverse("admin:offload_taskrecord_change", args=[task.pk])
    assert operator.get(page + "?backend=nope").status_code == 400
    operate = reverse("admin:offload_taskrecord_operate", args=[task.pk, "cancel"])
    assert operator.post(operate + "?backend=nope").status_code == 400
    assert TaskRecord.objects.get().status == State.READY
    # Who may not see the lists learns nothing of the aliases.
    anonymous = Client().get(reverse("admin:offload_taskrecord_changelist") + "?backend=nope")
    assert anonymous.status_code == 302
