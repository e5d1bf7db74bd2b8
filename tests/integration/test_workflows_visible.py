"""Workflows as an operator sees them: a task's page (its workflow, the tasks
it waits for and those waiting for it, the workflow's tasks), the task list
filtered to a workflow, the dashboard, the queues page and ``offload status``."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.text import capfirst

from offload.admin import workflow_fields
from offload.models import TaskDependency
from offload.states import State
from offload.workflows import after, call, group
from tests.admin_factory import make_task, make_user
from tests.app import tasks
from tests.helpers import drain, run_offload

LIST = reverse("admin:offload_taskrecord_changelist")


@pytest.fixture
def operator() -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(make_user("root", superuser=True))
    return client


def page_of(client: Client, task_id: object) -> str:
    response = client.get(reverse("admin:offload_taskrecord_change", args=[int(str(task_id))]))
    assert response.status_code == 200
    return response.text


def section(page: str, label: str) -> str:
    """The HTML of the read-only field labelled ``label`` on a task's page."""
    start = page.index(f"<label>{capfirst(label)}:</label>")
    return page[start : page.index('<div class="form-row', start)]


def linked_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r">#(\d+)</a>", html)]


def test_a_callbacks_page_shows_what_it_waits_for_in_order_with_their_states(operator):
    flow = group(call(tasks.double, n) for n in range(3)).then(call(tasks.total)).enqueue()
    members, callback = [int(r.id) for r in flow.results[:3]], flow.results[3]
    page = page_of(operator, callback.id)
    assert "Tasks of the workflow" in page
    assert f'href="{LIST}?workflow_id={flow.id}"' in page
    waits = section(page, "waits for, in order")
    assert linked_ids(waits) == members
    assert waits.count("offload-status-ready") == 3
    assert "3 (it becomes ready when the last of them ends)" in page
    assert "stop: a failed or cancelled upstream task cancels this task" in page
    assert "the list of its upstream tasks&#x27; results, in order" in page
    assert "(on 3 upstream task(s))" in page  # beside the WAITING badge
    # The workflow's tasks, each with what it waits for: the callback's row
    # lists the members.
    graph = section(page, "tasks, in the order the workflow was built")
    assert linked_ids(graph) == [*members, int(callback.id), *members]
    assert "(this task)" in graph
    drain()
    page = page_of(operator, callback.id)
    assert section(page, "waits for, in order").count("offload-status-successful") == 3
    assert "it becomes ready" not in page  # the count means something only while it waits


def test_the_upstreams_are_listed_in_the_order_the_task_receives_them(operator):
    first, second, third = (tasks.double.enqueue(n) for n in range(3))
    waiting = after(third, first, second, pass_results=True).enqueue(tasks.total)
    page = page_of(operator, waiting.id)
    ids = [int(r.id) for r in (third, first, second)]
    assert linked_ids(section(page, "waits for, in order")) == ids
    # The upstreams were enqueued outside any workflow; the task's own is its id.
    assert f"?workflow_id={waiting.id}" in page


def test_a_members_page_shows_the_task_waiting_for_it(operator):
    flow = group(call(tasks.double, n) for n in range(2)).then(call(tasks.total)).enqueue()
    page = page_of(operator, flow.results[0].id)
    dependents = section(page, "tasks waiting for it")
    assert linked_ids(dependents) == [int(flow.results[2].id)]
    assert "offload-status-waiting" in dependents
    assert "waits for, in order" not in page  # it waits for nothing
    # A task outside any workflow: no workflow section at all.
    plain = page_of(operator, make_task().pk)
    assert "<label>Workflow:</label>" not in plain
    assert "Tasks of the workflow" not in plain


def test_a_long_workflow_is_cut_short_with_the_rest_one_link_away(operator, monkeypatch):
    monkeypatch.setattr(workflow_fields, "WORKFLOW_TASKS_SHOWN", 3)
    monkeypatch.setattr(workflow_fields, "EDGES_SHOWN", 2)
    flow = group(call(tasks.double, n) for n in range(5)).then(call(tasks.total)).enqueue()
    page = page_of(operator, flow.results[-1].id)
    graph = section(page, "tasks, in the order the workflow was built")
    assert "and 3 more" in graph
    assert f"All the tasks of workflow {flow.id} in the task list" in graph
    waits = section(page, "waits for, in order")
    assert len(linked_ids(waits)) == 2
    assert "and 3 more" in waits


def test_what_a_task_page_shows_of_a_workflow_is_escaped(operator):
    upstream = make_task(task_path="tests.<script>alert(1)</script>")
    task = make_task(
        status=State.WAITING, workflow_id=upstream.pk, waiting_on=1, on_upstream_failure="<b>"
    )
    upstream.workflow_id = upstream.pk
    upstream.save(update_fields=["workflow_id"])
    TaskDependency.objects.create(task_id=task.pk, upstream_id=upstream.pk, position=0)
    page = page_of(operator, task.pk)
    assert "<script>alert(1)" not in page
    assert "tests.&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in section(page, "if an upstream task fails")


def test_the_task_list_filters_by_workflow_and_refuses_garbage(operator):
    flow = group(call(tasks.double, n) for n in range(2)).then(call(tasks.total)).enqueue()
    other = group(call(tasks.double, n) for n in range(2)).enqueue()
    plain = make_task()
    response = operator.get(LIST, {"workflow_id": flow.id})
    assert response.status_code == 200
    shown = {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.text)}
    assert shown == {int(r.id) for r in flow.results}
    assert plain.pk not in shown
    assert int(other.id) not in shown
    assert operator.get(LIST, {"workflow_id": ""}).status_code == 200
    for junk in ("x", "-1", "1.5", "9" * 30, "\uff11\uff12", "\x00", "1 OR 1=1"):
        response = operator.get(LIST, {"workflow_id": junk})
        assert response.status_code == 400, junk
        assert "'workflow_id'" in response.text


def test_the_dashboard_and_the_queues_page_count_waiting_tasks(operator):
    group(call(tasks.double, n) for n in range(2)).then(call(tasks.total)).enqueue()
    counters = operator.get(reverse("admin:offload_dashboard_data")).json()["counters"]
    assert (counters["ready"], counters["waiting"], counters["waiting_capped"]) == (2, 1, False)
    assert (
        "Waiting on upstream tasks"
        in operator.get(reverse("admin:offload_dashboard_changelist")).text
    )
    queues = operator.get(reverse("admin:offload_queue_changelist")).text
    assert "(+1 waiting on upstream tasks)" in queues


def test_status_counts_the_tasks_waiting_on_upstream_tasks():
    data = json.loads(run_offload("status", "--json")[1])
    assert data["waiting"] == 0
    assert "upstream tasks" not in run_offload("status")[1]
    group(call(tasks.double, n) for n in range(3)).then(
        call(tasks.total), call(tasks.double)
    ).enqueue()
    data = json.loads(run_offload("status", "--json")[1])
    assert data["waiting"] == 2
    (queue,) = [q for q in data["queues"] if q["name"] == "default"]
    assert (queue["ready"], queue["waiting"], queue["blocked"]) == (3, 2, 0)
    assert "Waiting on upstream tasks of a workflow: 2 (default 2)" in run_offload("status")[1]
