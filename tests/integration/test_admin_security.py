"""Every offload admin URL refuses those who may not use it, every action needs
POST with CSRF, everything a task controls is escaped, and odd parameters never
cause a server error."""

import pytest
from django.test import Client
from django.urls import reverse

from offload.models import TaskRecord
from offload.states import State
from tests.admin_factory import make_failed, make_task, make_user, make_worker

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
JS_URL = "javascript:alert(3)"

PAGES = [
    "admin:offload_taskrecord_changelist",
    "admin:offload_readytask_changelist",
    "admin:offload_scheduledtask_changelist",
    "admin:offload_runningtask_changelist",
    "admin:offload_failedtask_changelist",
    "admin:offload_successfultask_changelist",
    "admin:offload_workerrecord_changelist",
    "admin:offload_queue_changelist",
    "admin:offload_dashboard_changelist",
    "admin:offload_dashboard_data",
]


def _urls(task: TaskRecord, worker_id: str) -> list[tuple[str, str]]:
    """(method, url) for every page and operation."""
    urls = [("get", reverse(name)) for name in PAGES]
    urls += [
        ("get", reverse("admin:offload_taskrecord_change", args=[task.pk])),
        ("get", reverse("admin:offload_failedtask_change", args=[task.pk])),
        ("get", reverse("admin:offload_workerrecord_change", args=[worker_id])),
        ("post", reverse("admin:offload_queue_pause")),
        ("post", reverse("admin:offload_queue_resume")),
    ]
    urls += [
        ("post", reverse("admin:offload_taskrecord_operate", args=[task.pk, op]))
        for op in ("retry", "cancel", "copy", "delete")
    ]
    return urls


@pytest.mark.parametrize("who", ["anonymous", "not staff", "staff without permission"])
def test_every_url_refuses_users_without_permission(who):
    task = make_failed()
    worker = make_worker()
    client = Client()
    if who == "not staff":
        client.force_login(
            make_user("u", staff=False, perms=("view_taskrecord", "change_taskrecord"))
        )
    elif who == "staff without permission":
        client.force_login(make_user("u"))
    for method, url in _urls(task, worker.pk):
        response = getattr(client, method)(url, {"queue": "default"})
        assert response.status_code in (302, 403), (who, method, url, response.status_code)
        if response.status_code == 302:
            assert "/admin/login/" in response["Location"], (who, url)
    task.refresh_from_db()
    assert task.status == State.FAILED
    assert TaskRecord.objects.count() == 1


def test_view_permission_cannot_act():
    task = make_failed()
    client = Client()
    client.force_login(make_user("viewer", perms=("view_taskrecord", "view_queue")))
    assert client.get(reverse("admin:offload_taskrecord_change", args=[task.pk])).status_code == 200
    assert client.get(reverse("admin:offload_dashboard_changelist")).status_code == 200
    for op in ("retry", "cancel", "copy", "delete"):
        url = reverse("admin:offload_taskrecord_operate", args=[task.pk, op])
        assert client.post(url).status_code == 403
    assert client.post(reverse("admin:offload_queue_pause"), {"queue": "x"}).status_code == 403
    response = client.post(
        reverse("admin:offload_taskrecord_changelist"),
        {"action": "retry_tasks", "_selected_action": [task.pk]},
    )
    task.refresh_from_db()
    assert task.status == State.FAILED, response.status_code


def test_operations_need_post_and_csrf():
    task = make_failed()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("root", superuser=True))
    for op in ("retry", "cancel", "copy", "delete"):
        url = reverse("admin:offload_taskrecord_operate", args=[task.pk, op])
        assert client.get(url).status_code == 405
        assert client.post(url).status_code == 403  # no CSRF token
    assert client.get(reverse("admin:offload_queue_pause")).status_code == 405
    assert client.post(reverse("admin:offload_queue_pause"), {"queue": "q"}).status_code == 403
    response = client.post(
        reverse("admin:offload_taskrecord_changelist"),
        {"action": "delete_tasks", "_selected_action": [task.pk]},
    )
    assert response.status_code == 403
    # The detail page is read-only: a POST never saves the form over the row.
    detail = reverse("admin:offload_taskrecord_change", args=[task.pk])
    assert Client().post(detail).status_code == 302  # anonymous: to the login
    root = Client()
    root.force_login(make_user("root2", superuser=True))
    assert root.post(detail, {"status": "SUCCESSFUL"}).status_code == 405
    task.refresh_from_db()
    assert task.status == State.FAILED
    assert TaskRecord.objects.count() == 1


def test_everything_a_task_controls_is_escaped():
    task = make_failed(
        task_path=f"evil.{XSS}",
        queue_name=f"q{XSS}"[:100],
        args=[XSS, JS_URL],
        kwargs={"link": JS_URL, XSS: XSS},
        errors=[
            {
                "exception_class_path": XSS,
                "traceback": XSS,
                "attempt": 1,
                "worker_id": XSS,
                "at": XSS,
            }
        ],
        worker_ids=[XSS],
    )
    make_worker(name=XSS, queues=XSS)
    client = Client()
    client.force_login(make_user("root", superuser=True))
    pages = [reverse(name) for name in PAGES if not name.endswith("_data")]
    pages.append(reverse("admin:offload_taskrecord_change", args=[task.pk]))
    pages.append(reverse("admin:offload_taskrecord_changelist") + "?q=evil")
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "<script>alert" not in response.text, url
        assert "<img src=x" not in response.text, url
        assert 'href="javascript:' not in response.text, url
        assert "script-src 'self'" in response.headers["Content-Security-Policy"], url
    detail = client.get(reverse("admin:offload_taskrecord_change", args=[task.pk])).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail


FUZZ = [
    "?o=99", "?o=-1.x", "?o=1.2.3.4.5.6.7.8", "?p=-1", "?p=999999999", "?p=abc", "?all=",
    "?status=NOPE", "?status=", "?queue=" + "x" * 500, "?task=" + "y" * 5000,
    "?worker=" + "z" * 300,
    "?finished=99y", "?enqueued=", "?q=" + "9" * 40, "?q=-1", "?q=%00", "?q=" + "%" * 50,
    "?args__contains=1", "?id__gt=0", "?e=1", "?_to_field=task_path", "?refresh=-5",
    "?refresh=" + "9" * 30, "?_facets=1", "?window=%3Cscript%3E", "?q=%27%20OR%201=1--",
]  # fmt: skip


def test_fuzzed_filters_and_sorting_never_error():
    make_failed()
    make_task(queue_name="emails")
    client = Client(raise_request_exception=False)
    client.force_login(make_user("root", superuser=True))
    for name in PAGES:
        for query in FUZZ:
            response = client.get(reverse(name) + query)
            assert response.status_code < 500, (name, query, response.status_code)
    for object_id in ("abc", "-1", "9" * 40, "1%00"):
        for op in ("retry", "nope"):
            client.post(f"/admin/offload/taskrecord/{object_id}/operate/{op}/")
            response = client.post(f"/admin/offload/taskrecord/{object_id}/operate/{op}/")
            assert response.status_code < 500, (object_id, op)
        response = client.get(f"/admin/offload/taskrecord/{object_id}/change/")
        assert response.status_code < 500, object_id
    for queue in ("", "q" * 500):
        response = client.post(reverse("admin:offload_queue_pause"), {"queue": queue})
        assert response.status_code == 302
