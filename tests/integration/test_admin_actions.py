"""List actions act on a set fixed when they start, bounded by ADMIN_ACTION_LIMIT,
confirmed when they reach beyond the page, permission-checked (403), and logged."""

import signal
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from offload.models import Queue, TaskRecord
from offload.states import State
from tests.admin_factory import confirm, make_failed, make_task, make_user, make_worker

ACTIONS = ("retry_tasks", "cancel_tasks", "run_again", "delete_tasks")
OPERATIONS = ("retry", "cancel", "copy", "delete")


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    """An action that never ends fails the test instead of hanging the run."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError("the admin action did not end within 60 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def _limit(settings: Any, limit: int) -> None:
    settings.TASKS = {
        **settings.TASKS,
        "default": {**settings.TASKS["default"], "OPTIONS": {"ADMIN_ACTION_LIMIT": limit}},
    }


def _post_action(client: Client, url: str, action: str, selected: list[int], **extra: str) -> Any:
    data = {"action": action, "index": "0", "_selected_action": [str(pk) for pk in selected]}
    data.update(extra)
    return client.post(url, data)


def _snapshot() -> tuple[list[tuple[int, str]], list[str], int]:
    tasks = list(TaskRecord.objects.order_by("pk").values_list("pk", "status"))
    queues = list(Queue.objects.order_by("name").values_list("name", flat=True))
    return tasks, queues, LogEntry.objects.count()


# One view per list, and three tasks that it lists.
VIEWS: dict[str, dict[str, Any]] = {
    "taskrecord": {},
    "readytask": {"status": State.READY},
    "scheduledtask": {"status": State.READY},  # run_after is set below
    "runningtask": {"status": State.RUNNING, "attempt": 1, "lease_owner": "w"},
    "failedtask": {"status": State.FAILED, "attempt": 1},
    "successfultask": {"status": State.SUCCESSFUL, "attempt": 1},
}


@pytest.mark.parametrize("view", VIEWS)
def test_copy_of_everything_matched_makes_exactly_one_copy_each(operator, view):
    fields = dict(VIEWS[view])
    if view == "scheduledtask":
        later = timezone.now() + timedelta(hours=1)
        fields.update(run_after=later, available_at=later)
    originals = [make_task(queue_name="emails", **fields) for _ in range(3)]
    make_task(queue_name="default", **fields)  # not matched by the filter
    url = reverse(f"admin:offload_{view}_changelist") + "?queue=emails"
    page = _post_action(operator, url, "run_again", [originals[0].pk], select_across="1")
    assert page.status_code == 200
    assert page.context["count"] == 3
    assert TaskRecord.objects.count() == 4  # nothing done before the confirmation
    response = confirm(operator, url, page)
    assert response.status_code == 302
    emails = TaskRecord.objects.filter(queue_name="emails")
    assert emails.count() == 6
    copies = emails.exclude(pk__in=[t.pk for t in originals])
    assert {c.status for c in copies} == {State.READY}
    assert TaskRecord.objects.filter(queue_name="default").count() == 1


def test_copy_of_the_selected_rows_copies_each_once(operator):
    tasks = [make_task() for _ in range(3)]
    url = reverse("admin:offload_readytask_changelist")
    response = _post_action(operator, url, "run_again", [t.pk for t in tasks])
    assert response.status_code == 302  # no confirmation for a selection
    assert TaskRecord.objects.count() == 6


def test_delete_of_everything_matched_asks_first_and_keeps_to_the_bound(operator):
    doomed = [make_failed(queue_name="emails") for _ in range(3)]
    kept = make_failed(queue_name="default")
    url = reverse("admin:offload_taskrecord_changelist") + "?queue=emails"
    page = _post_action(operator, url, "delete_tasks", [doomed[0].pk], select_across="1")
    assert page.status_code == 200
    assert "Content-Security-Policy" in page.headers
    assert 'id="offload-confirm-count">3<' in page.text
    assert TaskRecord.objects.count() == 4  # not yet
    # A task that matches but arrives after the confirmation page is left out.
    late = make_failed(queue_name="emails")
    response = confirm(operator, url, page)
    assert response.status_code == 302
    assert set(TaskRecord.objects.values_list("pk", flat=True)) == {kept.pk, late.pk}


def test_delete_of_selected_rows_asks_too(operator):
    task = make_failed()
    url = reverse("admin:offload_taskrecord_changelist")
    page = _post_action(operator, url, "delete_tasks", [task.pk])
    assert page.status_code == 200
    assert TaskRecord.objects.filter(pk=task.pk).exists()
    confirm(operator, url, page)
    assert not TaskRecord.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize("action", ACTIONS)
def test_more_than_the_limit_is_refused_and_nothing_done(operator, settings, action):
    _limit(settings, 3)
    tasks = [make_failed() for _ in range(4)]
    before = _snapshot()
    url = reverse("admin:offload_taskrecord_changelist")
    response = _post_action(operator, url, action, [tasks[0].pk], select_across="1")
    assert response.status_code == 302
    assert _snapshot() == before
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("ADMIN_ACTION_LIMIT" in m for m in messages), messages
    # Nor by posting the confirmation directly, or many selected ids.
    response = _post_action(
        operator, url, action, [tasks[0].pk], select_across="1", offload_confirm="yes",
        offload_bound=str(tasks[-1].pk),
    )  # fmt: skip
    assert _snapshot() == before
    response = _post_action(
        operator, url, action, [t.pk for t in tasks], offload_confirm="yes",
        offload_bound=str(tasks[-1].pk),
    )  # fmt: skip
    assert _snapshot() == before


def test_at_the_limit_the_action_runs(operator, settings):
    _limit(settings, 3)
    tasks = [make_failed() for _ in range(3)]
    url = reverse("admin:offload_failedtask_changelist")
    page = _post_action(operator, url, "retry_tasks", [tasks[0].pk], select_across="1")
    confirm(operator, url, page)
    assert set(TaskRecord.objects.values_list("status", flat=True)) == {State.READY}


# Each single permission, and the operations it allows.
GRANTS: dict[str, set[str]] = {
    "view_taskrecord": set(),
    "add_taskrecord": set(),
    "change_taskrecord": {"retry", "cancel", "copy"},
    "delete_taskrecord": {"delete"},
    "view_queue": set(),
    "change_queue": {"pause", "resume"},
    "view_workerrecord": set(),
}
ACTION_OPERATION = dict(zip(ACTIONS, OPERATIONS, strict=True))


def _attempts(task: TaskRecord) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(operation, method, url, data) for every way to act on ``task``."""
    changelist = reverse("admin:offload_taskrecord_changelist")
    for action, operation in ACTION_OPERATION.items():
        for extra in ({}, {"select_across": "1"}):
            data = {"action": action, "index": "0", "_selected_action": [str(task.pk)]}
            data.update(extra, offload_confirm="yes", offload_bound=str(task.pk))
            yield operation, "post", changelist, data
    for operation in OPERATIONS:
        url = reverse("admin:offload_taskrecord_operate", args=[task.pk, operation])
        yield operation, "post", url, {}
    yield "pause", "post", reverse("admin:offload_queue_pause"), {"queue": "emails"}
    yield "resume", "post", reverse("admin:offload_queue_resume"), {"queue": "emails"}


@pytest.mark.parametrize("permission", GRANTS)
def test_each_single_permission_may_do_only_what_it_grants(permission):
    client = Client()
    client.force_login(make_user("u", perms=(permission,)))
    task = make_failed(queue_name="emails")
    for operation, method, url, data in _attempts(task):
        if operation in GRANTS[permission]:
            continue
        before = _snapshot()
        response = getattr(client, method)(url, data)
        assert response.status_code == 403, (permission, operation, url, response.status_code)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert _snapshot() == before, (permission, operation, url)
    for operation in GRANTS[permission]:
        # What is granted works (each from a fresh task).
        fresh = make_task() if operation == "cancel" else make_failed(queue_name="emails")
        method, url, data = next(
            (m, u, d) for op, m, u, d in _attempts(fresh) if op == operation and "operate" in u
        ) if operation not in ("pause", "resume") else (
            "post", reverse(f"admin:offload_queue_{operation}"), {"queue": "emails"}
        )  # fmt: skip
        logged = LogEntry.objects.count()
        assert getattr(client, method)(url, data).status_code == 302, (permission, operation)
        assert LogEntry.objects.count() == logged + 1, (permission, operation)


def _entries(model: type) -> list[tuple[str, int, str, str]]:
    content_type = ContentType.objects.get_for_model(model)
    rows = LogEntry.objects.filter(content_type=content_type).order_by("pk")
    return [(e.object_id, e.action_flag, e.change_message, e.user.username) for e in rows]


def test_every_action_writes_one_log_entry_per_row_it_changed(operator):
    failed = [make_failed() for _ in range(2)]
    done = make_task(status=State.SUCCESSFUL, attempt=1)
    url = reverse("admin:offload_taskrecord_changelist")
    ids = [str(t.pk) for t in (*failed, done)]

    _post_action(operator, url, "retry_tasks", [int(i) for i in ids])
    assert _entries(TaskRecord) == [(str(t.pk), CHANGE, "Retried.", "root") for t in failed]
    LogEntry.objects.all().delete()

    running = make_task(status=State.RUNNING, attempt=1, lease_owner=make_worker().pk)
    _post_action(operator, url, "cancel_tasks", [failed[0].pk, running.pk, done.pk])
    assert _entries(TaskRecord) == [
        (str(failed[0].pk), CHANGE, "Cancelled.", "root"),
        (str(running.pk), CHANGE, "Asked to stop (cancel requested).", "root"),
    ]
    LogEntry.objects.all().delete()

    _post_action(operator, url, "run_again", [done.pk])
    copy = TaskRecord.objects.order_by("-pk").first()
    assert _entries(TaskRecord) == [
        (str(copy.pk), ADDITION, f"Run again as a copy of task #{done.pk}.", "root")
    ]
    LogEntry.objects.all().delete()

    page = _post_action(operator, url, "delete_tasks", [done.pk, running.pk])
    confirm(operator, url, page)
    assert _entries(TaskRecord) == [(str(done.pk), DELETION, "Deleted.", "root")]
    entry = LogEntry.objects.get()
    assert entry.object_repr == f"#{done.pk} tests.app.tasks.add"
    LogEntry.objects.all().delete()

    for operation in ("cancel", "retry", "copy", "delete"):
        operator.post(reverse("admin:offload_taskrecord_operate", args=[failed[1].pk, operation]))
    flags = [flag for _id, flag, _message, _user in _entries(TaskRecord)]
    assert flags == [CHANGE, CHANGE, ADDITION, DELETION]

    operator.post(reverse("admin:offload_queue_pause"), {"queue": "emails"})
    operator.post(reverse("admin:offload_queue_resume"), {"queue": "emails"})
    assert _entries(Queue) == [
        ("emails", CHANGE, "Paused.", "root"),
        ("emails", CHANGE, "Resumed.", "root"),
    ]


def test_a_queue_name_with_a_nul_is_refused_not_an_error(operator):
    client = Client(raise_request_exception=False)
    client.force_login(make_user("ops", superuser=True))
    for view in ("pause", "resume"):
        response = client.post(reverse(f"admin:offload_queue_{view}"), {"queue": "q\x00"})
        assert response.status_code == 302
    assert not Queue.objects.exists()
    assert not LogEntry.objects.exists()


def test_a_selected_id_that_is_no_id_is_a_400(operator):
    task = make_failed()
    url = reverse("admin:offload_taskrecord_changelist")
    for junk in ("abc", "1\x00", "9" * 30, "-1"):
        response = operator.post(
            url, {"action": "retry_tasks", "index": "0", "_selected_action": [str(task.pk), junk]}
        )
        assert response.status_code == 400, junk
    task.refresh_from_db()
    assert task.status == State.FAILED


def test_a_status_views_history_is_the_tasks_history(operator):
    task = make_failed()
    operator.post(reverse("admin:offload_failedtask_operate", args=[task.pk, "retry"]))
    response = operator.get(reverse("admin:offload_failedtask_history", args=[task.pk]))
    assert response.status_code == 302
    page = operator.get(response["Location"])
    assert page.status_code == 200
    assert "Retried." in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src")
