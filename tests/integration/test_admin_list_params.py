"""The admin's lists take only the parameters their filters offer, with values
those filters can read: anything else is a 400, never a server error."""

import pytest
from django.test import Client
from django.urls import reverse

from offload.models import TaskRecord, WorkerRecord
from tests.admin_factory import make_failed, make_task, make_user, make_worker

TASK_LISTS = [
    "admin:offload_taskrecord_changelist",
    "admin:offload_readytask_changelist",
    "admin:offload_scheduledtask_changelist",
    "admin:offload_runningtask_changelist",
    "admin:offload_failedtask_changelist",
    "admin:offload_successfultask_changelist",
]
LISTS = [*TASK_LISTS, "admin:offload_workerrecord_changelist", "admin:offload_queue_changelist"]
# Values that break one database or another when they reach it.
VALUES = ["x", "\x00", "[", "-1", "", "9" * 30, "2026-13-45", '{"a": 1}', "1,2"]


@pytest.fixture
def client() -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(make_user("root", superuser=True))
    make_failed()
    make_task(queue_name="emails")
    make_task(status="RUNNING", attempt=1, lease_owner=make_worker().pk)
    return client


def _lookups(model: type) -> list[str]:
    """Every field lookup Django would accept on ``model``'s own fields."""
    found = []
    for field in model._meta.concrete_fields:
        found.append(field.name)
        found += [f"{field.name}__{lookup}" for lookup in field.get_lookups()]
    return found


@pytest.mark.parametrize(("model", "name"), [
    (TaskRecord, "admin:offload_taskrecord_changelist"),
    (WorkerRecord, "admin:offload_workerrecord_changelist"),
])  # fmt: skip
def test_every_field_lookup_from_the_url_is_refused(client, model, name):
    url = reverse(name)
    offered = {"status", "queue", "task", "enqueued", "finished", "worker", "hostname",
               "hostname__isnull", "workflow_id"}  # fmt: skip
    for lookup in _lookups(model):
        for value in ("x", "[", "\x00"):
            response = client.get(url, {lookup: value})
            assert response.status_code < 500, (lookup, value, response.status_code)
            if lookup not in offered:
                assert response.status_code == 400, (lookup, value, response.status_code)


@pytest.mark.parametrize("name", LISTS)
def test_junk_in_any_parameter_is_a_400_or_ignored_never_a_500(client, name):
    url = reverse(name)
    params = ["status", "queue", "task", "worker", "enqueued", "finished", "hostname",
              "hostname__isnull", "workflow_id", "q", "o", "p", "all", "args__contains",
              "kwargs__has_key", "args__0", "name__regex", "id__gt", "_to_field", "_popup", "e",
              "junk"]  # fmt: skip
    for param in params:
        for value in VALUES:
            response = client.get(url, {param: value})
            assert response.status_code < 500, (name, param, value, response.status_code)
            if "\x00" in value:
                assert response.status_code == 400, (name, param, response.status_code)


@pytest.mark.parametrize("name", TASK_LISTS)
def test_the_reported_urls_are_400s_that_say_why(client, name):
    url = reverse(name)
    for query in ("?queue=%00", "?task=%00", "?worker=%00", "?status=%00", "?status=NOPE",
                  "?args__contains=x", "?enqueued=99y", "?queue=" + "x" * 101):  # fmt: skip
        response = client.get(url + query)
        assert response.status_code == 400, (name, query, response.status_code)
        assert response.headers["Content-Security-Policy"].startswith("default-src")
        assert "'" in response.text  # names the parameter


def test_offered_filters_still_work(client):
    url = reverse("admin:offload_taskrecord_changelist")
    queries = (
        "?status=FAILED",
        "?queue=emails",
        "?task=",
        "?task=tests.*",
        "?enqueued=7d",
        "?worker=host:100:abc",
        "?workflow_id=1",
        "?workflow_id=",
        "?q=tests",
        "?o=1",
        "?p=1",
        "?e=1",
        "?_facets=1",
    )
    for query in queries:
        assert client.get(url + query).status_code == 200, query
    workers = reverse("admin:offload_workerrecord_changelist")
    assert client.get(workers + "?hostname=host").status_code == 200
    assert client.get(workers + "?hostname__isnull=True").status_code == 200
    assert client.get(workers + "?pid__regex=[").status_code == 400


def test_a_status_view_does_not_take_a_status(client):
    # The view fixes the status; a second one from the URL was applied as a lookup.
    response = client.get(reverse("admin:offload_readytask_changelist") + "?status=FAILED")
    assert response.status_code == 400


def test_the_queue_page_takes_no_parameters(client):
    url = reverse("admin:offload_queue_changelist")
    assert client.get(url).status_code == 200
    assert client.get(url + "?queue=%00").status_code == 400


def test_the_guard_serves_any_model_admin_with_field_filters():
    """StrictListParams on a plain ModelAdmin (the schedules' list filters)."""
    from django.contrib import admin
    from django.test import RequestFactory

    from offload.admin.list_params import StrictListParams
    from offload.models import Schedule

    class Strict(StrictListParams, admin.ModelAdmin):  # type: ignore[type-arg]
        list_filter = ("enabled", "from_code", "backend", "catch_up")
        search_fields = ("name",)

    model_admin = Strict(Schedule, admin.AdminSite())
    user = make_user("root", superuser=True)

    def status(query: str) -> int:
        request = RequestFactory().get("/admin/offload/schedule/" + query)
        request.user = user
        return model_admin.changelist_view(request).status_code

    for good in ("", "?enabled__exact=1", "?catch_up__exact=once", "?backend=default",
                 "?q=nightly", "?o=1"):  # fmt: skip
        assert status(good) == 200, good
    for bad in ("?name__regex=[", "?args__contains=x", "?catch_up__exact=never",
                "?enabled__exact=maybe", "?backend=%00", "?kwargs__a=1", "?id__gt=0"):  # fmt: skip
        assert status(bad) == 400, bad
