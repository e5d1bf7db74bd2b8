"""A task's workflow on its admin page: the workflow it belongs to, the tasks it
waits for and those that wait for it, each with its state, and the whole
workflow as a list of its tasks and what each waits for.

Every read is bounded (see ``offload.store.reads``): at most ``EDGES_SHOWN``
upstream or dependent tasks, at most ``WORKFLOW_TASKS_SHOWN`` tasks of the
workflow and ``GRAPH_EDGES_READ`` of their edges; the counts past them stop at
``OPTIONS["ADMIN_COUNT_LIMIT"]``. The rest is one link away: the task list
filtered to the workflow (``?workflow_id=``).
"""

from typing import Any

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from offload.admin import display
from offload.admin.backend_choice import database_query
from offload.admin.options import admin_options
from offload.models import TaskRecord
from offload.states import State
from offload.store import reads
from offload.store.dependencies import CONTINUE, LIST, STOP, VALUE

# Upstream (or dependent) tasks listed on a task's page.
EDGES_SHOWN = 100
# Tasks of the workflow listed on a task's page, and the edges read for them.
WORKFLOW_TASKS_SHOWN = 200
GRAPH_EDGES_READ = 2_000
# Upstream ids shown in one row of the workflow's list.
UPSTREAMS_PER_ROW = 10

RULES = {
    STOP: "stop: a failed or cancelled upstream task cancels this task",
    CONTINUE: "continue: it runs whatever its upstream tasks did "
    "(a failed one's result is a Failed, with its id and state)",
}
RESULTS = {
    VALUE: "the result of its upstream task, ahead of its own arguments",
    LIST: "the list of its upstream tasks' results, in order, ahead of its own arguments",
}

WORKFLOW_FIELDS = (
    "workflow_display",
    "upstreams_display",
    "waiting_on_display",
    "failure_rule_display",
    "results_display",
    "dependents_display",
    "workflow_graph",
)


# Each link carries the page's ``?backend=`` (``query``, '' on the admin's own
# database): a workflow's tasks are all on one database.


def task_url(task_id: int, query: str = "") -> str:
    # The all-tasks page: it shows a task in any state.
    return reverse("admin:offload_taskrecord_change", args=[task_id]) + query


def workflow_url(workflow_id: int, query: str = "") -> str:
    url = f"{reverse('admin:offload_taskrecord_changelist')}?workflow_id={workflow_id}"
    return url + query.replace("?", "&", 1)


def _task_link(task_id: int, query: str) -> SafeString:
    return format_html('<a href="{}">#{}</a>', task_url(task_id, query), task_id)


def _more(some: reads.Some) -> SafeString:
    left = some.total - len(some.items)
    if left <= 0 and not some.capped:
        return SafeString("")
    return format_html(
        '<p class="offload-more">and {}{} more</p>', "at least " if some.capped else "", left
    )


def linked_list(some: reads.Some, query: str, tag: str = "ul") -> SafeString:
    """Tasks as links, each with its state and path, then how many more."""
    if not some.items:
        return format_html("{}", "-")
    items = format_html_join(
        "",
        '<li>{} {} <span class="offload-path" title="{}">{}</span></li>',
        (
            (_task_link(t.id, query), display.status_badge(t.status), t.task_path, t.task_path)
            for t in some.items
        ),
    )
    return format_html('<{} class="offload-linked">{}</{}>{}', tag, items, tag, _more(some))


def _row(task: reads.Linked, ups: list[int], current: int, query: str) -> tuple[Any, ...]:
    links = ((_task_link(up, query),) for up in ups[:UPSTREAMS_PER_ROW])
    shown = format_html_join(", ", "{}", links)
    more = len(ups) - UPSTREAMS_PER_ROW
    waits = format_html("{}{}", shown, f" and {more} more" if more > 0 else "") if ups else "-"
    mark = " (this task)" if task.id == current else ""
    return (
        "offload-current" if task.id == current else "",
        _task_link(task.id, query), mark, task.task_path, task.task_path,
        display.status_badge(task.status), waits,
    )  # fmt: skip


def workflow_table(row: TaskRecord, workflow_id: int) -> SafeString:
    """The workflow's tasks in the order it was built, each with its state and
    the tasks it waits for: the graph as an adjacency list."""
    using = row._state.db or "default"
    query = database_query(row._state.db)
    cap = admin_options().admin_count_limit
    tasks = reads.workflow_tasks(using, workflow_id, WORKFLOW_TASKS_SHOWN, cap)
    edges = reads.upstream_ids(using, [t.id for t in tasks.items], GRAPH_EDGES_READ)
    body = format_html_join(
        "",
        '<tr class="{}"><td>{}{}</td><td><span class="offload-path" title="{}">{}</span></td>'
        "<td>{}</td><td>{}</td></tr>",
        (_row(task, edges.get(task.id, []), row.pk, query) for task in tasks.items),
    )
    cut = ""
    if sum(len(ups) for ups in edges.values()) >= GRAPH_EDGES_READ:
        cut = format_html(
            '<p class="offload-more">Only the first {} edges are listed.</p>', GRAPH_EDGES_READ
        )
    return format_html(
        '<table class="offload-workflow"><thead><tr><th>Task</th><th>Path</th><th>State</th>'
        "<th>Waits for</th></tr></thead><tbody>{}</tbody></table>{}{}"
        '<p><a href="{}">All the tasks of workflow {} in the task list</a></p>',
        body, _more(tasks), cut, workflow_url(workflow_id, query), workflow_id,
    )  # fmt: skip


def workflow_fieldsets(obj: TaskRecord) -> list[tuple[str, dict[str, Any]]]:
    """The task page's workflow sections, for a task that has a workflow,
    upstream tasks or dependents (none for any other task)."""
    fields: list[str] = []
    if obj.workflow_id is not None:
        fields.append("workflow_display")
    if obj.on_upstream_failure is not None:
        fields += ["upstreams_display", "waiting_on_display"]
        fields += ["failure_rule_display", "results_display"]
    if obj.has_dependents or reads.is_upstream(obj):
        fields.append("dependents_display")
    found: list[tuple[str, dict[str, Any]]] = []
    if fields:
        found.append(("Workflow", {"fields": tuple(fields)}))
    if obj.workflow_id is not None:
        found.append(("Tasks of the workflow", {"fields": ("workflow_graph",)}))
    return found


class WorkflowFields:
    """The task admin's workflow fields (read-only)."""

    @admin.display(description="workflow")
    def workflow_display(self, obj: TaskRecord) -> SafeString:
        if obj.workflow_id is None:
            return format_html("{}", "-")
        return format_html(
            '<a href="{}">{}</a> (the id of its first task; the link lists all its tasks)',
            workflow_url(obj.workflow_id, database_query(obj._state.db)), obj.workflow_id,
        )  # fmt: skip

    @admin.display(description="waits for, in order")
    def upstreams_display(self, obj: TaskRecord) -> SafeString:
        cap = admin_options().admin_count_limit
        some = reads.upstream_tasks(obj, EDGES_SHOWN, cap)
        return linked_list(some, database_query(obj._state.db), "ol")

    @admin.display(description="tasks waiting for it")
    def dependents_display(self, obj: TaskRecord) -> SafeString:
        cap = admin_options().admin_count_limit
        some = reads.dependent_tasks(obj, EDGES_SHOWN, cap)
        return linked_list(some, database_query(obj._state.db))

    @admin.display(description="upstream tasks not ended")
    def waiting_on_display(self, obj: TaskRecord) -> str:
        # The count means something only while the task waits.
        if obj.status != State.WAITING or obj.waiting_on is None:
            return "-"
        return f"{obj.waiting_on} (it becomes ready when the last of them ends)"

    @admin.display(description="if an upstream task fails")
    def failure_rule_display(self, obj: TaskRecord) -> str:
        rule = obj.on_upstream_failure
        return RULES.get(rule or "", rule or "-")

    @admin.display(description="receives")
    def results_display(self, obj: TaskRecord) -> str:
        passed = obj.upstream_results
        if passed is None:
            return "nothing from its upstream tasks (it only waits for them)"
        return RESULTS.get(passed, passed)

    @admin.display(description="tasks, in the order the workflow was built")
    def workflow_graph(self, obj: TaskRecord) -> SafeString:
        if obj.workflow_id is None:
            return format_html("{}", "-")
        return workflow_table(obj, obj.workflow_id)
