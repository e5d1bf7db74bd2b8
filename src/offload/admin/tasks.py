"""The task admin: a list that stays fast with millions of rows, a detail page that
explains a task, and the operator's actions (retry, cancel, run again, delete)
on selected rows or on everything a filter matches.

Why the list stays fast:

* No unbounded ``COUNT(*)``: the paginator counts at most
  ``OPTIONS["ADMIN_COUNT_LIMIT"]`` rows (``SELECT COUNT(*) FROM (... LIMIT n)``)
  and the full count is never asked for.
* It sorts only on indexed columns, filters only through indexed ones (see
  ``filters`` and the initial migration), and never loads the JSON columns.
"""

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from offload.admin import bulk, display, task_operations, workflow_fields
from offload.admin.backend_choice import BackendChoice, backend_query, database_query
from offload.admin.bulk import BulkAction
from offload.admin.filters import (
    EnqueuedFilter,
    FinishedFilter,
    QueueNameFilter,
    StatusFilter,
    TaskPathFilter,
    WorkerFilter,
    WorkflowFilter,
)
from offload.admin.list_params import StrictListParams, bad_request
from offload.admin.masking import MASK, arguments_hidden
from offload.admin.options import admin_options
from offload.admin.paging import BoundedChangeList, CappedPaginator
from offload.admin.security import csp_urls, csp_view, require_perm
from offload.admin.workflow_fields import WorkflowFields
from offload.models import (
    TaskRecord,
)
from offload.progress import Progress
from offload.states import State
from offload.store import reads

# Django's ModelAdmin is generic only to the type checker.
if TYPE_CHECKING:
    ModelAdminBase = admin.ModelAdmin[TaskRecord]
else:
    ModelAdminBase = admin.ModelAdmin

# Columns never loaded for the list: they can be large, and the list shows none of them.
HEAVY_COLUMNS = ("args", "kwargs", "return_value", "errors", "worker_ids")
BIGINT_MAX = 2**63 - 1


class TaskAdmin(BackendChoice, StrictListParams, WorkflowFields, ModelAdminBase):
    list_display = (
        "id",
        "task_link",
        "queue",
        "status_display",
        "tries",
        "enqueued",
        "finished",
        "run_time",
    )
    list_display_links = None
    list_filter = (
        StatusFilter,
        QueueNameFilter,
        TaskPathFilter,
        EnqueuedFilter,
        FinishedFilter,
        WorkerFilter,
        WorkflowFilter,
    )
    # Sorting on any other column would sort the whole table.
    sortable_by = ("id", "enqueued", "finished")
    ordering = ("-id",)
    search_fields = ("task_path",)  # the search box; see get_search_results
    search_help_text = "A task id, or the start of a task path."
    show_full_result_count = False
    # Facet counts would run a COUNT(*) per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    list_max_show_all = 200
    actions = ["retry_tasks", "cancel_tasks", "run_again", "delete_tasks"]
    change_form_template = "admin/offload/task_change_form.html"
    change_list_template = "admin/offload/task_change_list.html"
    # The status view this admin shows (None: all tasks).
    status: str | None = None

    fieldsets = (
        (
            "Task",
            {
                "fields": (
                    "id",
                    "task_path",
                    "backend",
                    "queue_name",
                    "priority",
                    "status_display",
                    "is_async",
                )
            },
        ),
        ("Arguments and result", {"fields": ("arguments", "result")}),
        ("Attempts", {"fields": ("attempt", "max_attempts", "errors_display")}),
        (
            "Timings",
            {
                "fields": (
                    "enqueued_at",
                    "run_after",
                    "available_at",
                    "claimed_at",
                    "started_at",
                    "last_attempted_at",
                    "finished_at",
                    "wait_time",
                    "run_time",
                    "timeout",
                )
            },
        ),
        (
            "Worker",
            {"fields": ("lease_owner", "lease_expires_at", "workers", "cancel_requested_at")},
        ),
    )

    # -- permissions: every status view answers to TaskRecord's permissions ----

    def _has(self, request: HttpRequest, action: str) -> bool:
        user = request.user
        return bool(
            user.is_active and user.is_staff and user.has_perm(f"offload.{action}_taskrecord")
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._has(request, "view") or self._has(request, "change")

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._has(request, "view") or self._has(request, "change")

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._has(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._has(request, "delete")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks are enqueued by code, never typed in

    # -- the list ----------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskRecord]:
        queryset = super().get_queryset(request).defer(*HEAVY_COLUMNS)
        if self.status == "SCHEDULED":
            return queryset.filter(status=State.READY, available_at__gt=timezone.now())
        if self.status == State.READY:
            return queryset.filter(status=State.READY, available_at__lte=timezone.now())
        if self.status is not None:
            return queryset.filter(status=self.status)
        return queryset

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BoundedChangeList

    def get_list_filter(self, request: HttpRequest) -> Any:
        if self.status is None:
            return self.list_filter
        return [f for f in self.list_filter if f is not StatusFilter]

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[TaskRecord],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> CappedPaginator:
        return CappedPaginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            limit=admin_options().admin_count_limit,
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[TaskRecord], search_term: str
    ) -> tuple[QuerySet[TaskRecord], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdecimal():
            # An id; digits too large for the column match nothing (and must
            # not reach the database, where they would overflow).
            value = int(term) if len(term) <= 19 else BIGINT_MAX + 1
            if value > BIGINT_MAX:
                return queryset.none(), False
            return queryset.filter(pk=value), False
        if len(term) > 255:
            return queryset.none(), False
        return queryset.filter(task_path__startswith=term), False

    @admin.display(description="task", ordering=None)
    def task_link(self, obj: TaskRecord) -> SafeString:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        return display.path_cell(url + database_query(obj._state.db), obj.task_path)

    @admin.display(description="queue")
    def queue(self, obj: TaskRecord) -> SafeString:
        return display.cut_text(obj.queue_name)

    @admin.display(description="tries")
    def tries(self, obj: TaskRecord) -> int:
        return obj.attempt

    @admin.display(description="enqueued", ordering="enqueued_at")
    def enqueued(self, obj: TaskRecord) -> SafeString:
        return display.compact_time(obj.enqueued_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj: TaskRecord) -> SafeString:
        return display.compact_time(obj.finished_at)

    @admin.display(description="runs at", ordering="available_at")
    def runs_at(self, obj: TaskRecord) -> SafeString:
        return display.compact_time(obj.available_at)

    @admin.display(description="status")
    def status_display(self, obj: TaskRecord) -> SafeString:
        badge = display.status_badge(obj.status)
        if obj.status == State.READY and obj.available_at > timezone.now():
            return format_html("{} <small>(scheduled)</small>", badge)
        if obj.status == State.RUNNING and obj.cancel_requested_at:
            return format_html("{} <small>(cancel requested)</small>", badge)
        if obj.status == State.WAITING and obj.waiting_on:
            return format_html("{} <small>(on {} upstream task(s))</small>", badge, obj.waiting_on)
        if obj.status == State.RUNNING and _waiting_in_worker(obj):
            return format_html("{} <small>(claimed, not started)</small>", badge)
        return badge

    @admin.display(description="run time")
    def run_time(self, obj: TaskRecord) -> str:
        # From when the last attempt's code began (not its claim: a claimed
        # task may wait in its worker's buffer), so a retried task's earlier
        # attempts and retry delays are not counted. With one attempt this
        # is finished_at - started_at.
        return display.duration(obj.last_attempted_at, obj.finished_at)

    @admin.display(description="waited")
    def waited(self, obj: TaskRecord) -> str:
        return self.wait_time(obj)

    @admin.display(description="progress")
    def progress_column(self, obj: TaskRecord) -> SafeString:
        return display.progress_cell(_progress_of(obj))

    # -- the detail page -----------------------------------------------------------

    def get_readonly_fields(self, request: HttpRequest, obj: TaskRecord | None = None) -> Any:
        return [
            "id", "task_path", "backend", "queue_name", "priority", "status_display", "is_async",
            "arguments", "result", "attempt", "max_attempts", "errors_display", "enqueued_at",
            "run_after", "available_at", "claimed_at", "started_at", "last_attempted_at",
            "finished_at",
            "wait_time", "run_time", "timeout", "lease_owner", "lease_expires_at", "workers",
            "cancel_requested_at", "progress_display", "unique_key_display", "unique_scope",
            "unique_until", "concurrency_key", "concurrency_limit", "key_holders", "rate_key",
            "rate_display", *workflow_fields.WORKFLOW_FIELDS,
        ]  # fmt: skip

    def get_fieldsets(self, request: HttpRequest, obj: TaskRecord | None = None) -> Any:
        # The progress section only for a task that reported some, the
        # uniqueness one only for a task enqueued with a unique key.
        task, *rest = self.fieldsets
        if obj is not None and obj.unique_scope:
            fields = ("unique_key_display", "unique_scope", "unique_until")
            rest.insert(0, ("Uniqueness", {"fields": fields}))
        if obj is not None and obj.concurrency_key:
            fields = ("concurrency_key", "concurrency_limit", "key_holders")
            rest.insert(0, ("Concurrency limit", {"fields": fields}))
        if obj is not None and obj.rate_key:
            rest.insert(0, ("Rate limit", {"fields": ("rate_key", "rate_display")}))
        if obj is not None and _progress_of(obj) is not None:
            rest.insert(0, ("Progress", {"fields": ("progress_display",)}))
        if obj is not None:
            # A workflow's task: where it stands in its workflow, right after what it is.
            return (task, *workflow_fields.workflow_fieldsets(obj), *rest)
        return (task, *rest)

    @admin.display(description="unique key")
    def unique_key_display(self, obj: TaskRecord) -> str:
        # A released key is gone from the row (NULL frees it for the next enqueue).
        return obj.unique_key or "released (the key may be taken by a new task)"

    @admin.display(description="tasks holding the key")
    def key_holders(self, obj: TaskRecord) -> str:
        # Counted for a task waiting on its key only: the number is what it waits for.
        if obj.status != State.BLOCKED or not obj.concurrency_key:
            return "-"
        holders, limit = reads.key_holders(obj), obj.concurrency_limit or 1
        return f"{holders} of {limit} (it waits for one of them to end)"

    @admin.display(description="rate")
    def rate_display(self, obj: TaskRecord) -> str:
        count, period = obj.rate_count or 1, obj.rate_period or 1.0
        return f"at most {count} start(s) per {period:g} s"

    @admin.display(description="latest report")
    def progress_display(self, obj: TaskRecord) -> SafeString:
        progress = _progress_of(obj)
        if progress is None:
            return display.progress_cell(None)
        return display.progress_detail(progress, timezone.now())

    @admin.display(description="arguments")
    def arguments(self, obj: TaskRecord) -> SafeString:
        if arguments_hidden(obj.task_path, admin_options().admin_mask_arguments):
            # OPTIONS["ADMIN_MASK_ARGUMENTS"]: not even their shape is shown.
            return display.as_json({"args": MASK, "kwargs": MASK})
        return display.as_json({"args": obj.args, "kwargs": obj.kwargs})

    @admin.display(description="return value")
    def result(self, obj: TaskRecord) -> SafeString:
        return display.as_json(obj.return_value)

    @admin.display(description="errors, newest first")
    def errors_display(self, obj: TaskRecord) -> SafeString:
        return display.errors_table(obj.errors)

    @admin.display(description="waited before its code first began")
    def wait_time(self, obj: TaskRecord) -> str:
        # From when it was first due (available_at moves with each retry) to
        # when its code began: time in its worker's buffer after the claim is
        # waiting too.
        due = max(obj.enqueued_at, obj.run_after or obj.enqueued_at)
        return display.duration(due, obj.started_at)

    @admin.display(description="worker processes, in claim order")
    def workers(self, obj: TaskRecord) -> str:
        return ", ".join(str(w) for w in obj.worker_ids) or "-"

    @csp_view
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The page is read-only: a task changes only through the store's
        # operations, never by saving a form over a row a worker may be writing.
        if request.method != "GET" or object_id is None:
            return HttpResponseNotAllowed(["GET"])
        context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
            "operations": self._operations(request),
        }
        return super().changeform_view(request, object_id, form_url, context)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        obj = kwargs.get("obj")
        if isinstance(obj, TaskRecord):
            context["task_lead"] = display.task_lead(
                self.status_display(obj), obj.status, obj.task_path, obj.errors, obj.return_value
            )
        return super().render_change_form(request, context, *args, **kwargs)

    def _operations(self, request: HttpRequest) -> list[tuple[str, str]]:
        found = []
        if self.has_change_permission(request):
            found += [("retry", "Retry"), ("cancel", "Cancel"), ("copy", "Run again as a copy")]
        if self.has_delete_permission(request):
            found.append(("delete", "Delete"))
        return found

    @csp_view
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            # Django would only say "No action selected" for an action it did
            # not offer this user: refuse it plainly.
            for name in request.POST.getlist("action"):
                if name in BULK_ACTIONS:
                    require_perm(request, BULK_ACTIONS[name].permission)
            for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                if not pk.isdecimal() or len(pk) > 19:
                    return bad_request(f"A selected task id is not a task id: {pk[:30]!r}.")
        return super().changelist_view(request, extra_context)

    @csp_view
    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if self.model is not TaskRecord:
            # Operations log under TaskRecord, whichever status view they came from.
            return HttpResponseRedirect(
                reverse("admin:offload_taskrecord_history", args=[quote(object_id)])
                + backend_query(request)
            )
        return super().history_view(request, object_id, extra_context)

    @csp_view
    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: TaskRecord) -> None:
        task_operations.delete(request, [obj.pk])  # logged there, running tasks kept

    def log_deletions(self, request: HttpRequest, queryset: Any) -> list[Any]:
        return []  # task_operations.delete logs the rows it really deleted

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> None:
        limit = admin_options().admin_action_limit
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: limit + 1])
        if len(ids) > limit:
            raise PermissionDenied(f"More than {limit} tasks (OPTIONS['ADMIN_ACTION_LIMIT']).")
        task_operations.delete(request, ids)

    # -- operations: one URL per operation on one task, POST only -------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/operate/<str:operation>/",
                self.admin_site.admin_view(self.operate_view),
                name="%s_%s_operate" % info,  # noqa: UP031  (Django's own naming)
            ),
            *csp_urls(super().get_urls()),
        ]

    def operate_view(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        return csp_view(require_POST(self._operate))(request, object_id, operation)

    def _operate(self, request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
        if operation not in task_operations.OPERATIONS:
            return HttpResponseNotAllowed(["POST"])
        handler, permission = task_operations.OPERATIONS[operation]
        require_perm(request, f"{permission}_taskrecord")
        refusal = self.backend_refusal(request)
        if refusal is not None:
            return refusal
        if not object_id.isdecimal() or len(object_id) > 19:
            return HttpResponseRedirect(self._list_url(request))
        obj = get_object_or_404(self.get_queryset(request).only("pk"), pk=int(object_id))
        handler(request, [obj.pk])
        if operation == "delete":
            return HttpResponseRedirect(self._list_url(request))
        # The task may have left this status view (a retried failure is READY):
        # then its page under all tasks, which shows it in any state.
        stays = self.get_queryset(request).filter(pk=obj.pk).exists()
        opts = self.opts if stays else TaskRecord._meta
        return HttpResponseRedirect(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            + backend_query(request)
        )

    def _list_url(self, request: HttpRequest) -> str:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        return url + backend_query(request)

    # -- actions on the selection, or on everything the filter matches ---------------

    @admin.action(
        description="Retry the selected failed or cancelled tasks", permissions=["change"]
    )
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> Any:
        return bulk.run(self, request, queryset, BULK_ACTIONS["retry_tasks"])

    @admin.action(description="Cancel the selected tasks", permissions=["change"])
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> Any:
        return bulk.run(self, request, queryset, BULK_ACTIONS["cancel_tasks"])

    @admin.action(description="Run the selected tasks again, as copies", permissions=["change"])
    def run_again(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> Any:
        return bulk.run(self, request, queryset, BULK_ACTIONS["run_again"])

    @admin.action(
        description="Delete the selected tasks (not running ones)", permissions=["delete"]
    )
    def delete_tasks(self, request: HttpRequest, queryset: QuerySet[TaskRecord]) -> Any:
        return bulk.run(self, request, queryset, BULK_ACTIONS["delete_tasks"])

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # action_location exists from Django 6.1 on; pass it only when given.
        extra = {} if action_location is None else {"action_location": action_location}
        found = super().get_actions(request, **extra)
        # Django's delete_selected loads every selected row to list it first;
        # delete_tasks deletes in bounded batches instead.
        found.pop("delete_selected", None)
        return found


BULK_ACTIONS = {
    action.name: action
    for action in (
        BulkAction("retry_tasks", "retry", "Retry"),
        BulkAction("cancel_tasks", "cancel", "Cancel"),
        BulkAction("run_again", "copy", "Run again as a copy"),
        BulkAction("delete_tasks", "delete", "Delete", always_confirm=True),
    )
}


def _progress_of(obj: TaskRecord) -> Progress | None:
    if obj.progress_current is None:
        return None
    return Progress(
        obj.progress_current, obj.progress_total, obj.progress_message or "", obj.progress_at
    )


def _waiting_in_worker(obj: TaskRecord) -> bool:
    """Whether a RUNNING task's latest claim has not begun its code yet: it waits
    in its worker's buffer for a thread (or its start is not written yet)."""
    if obj.claimed_at is None:
        return False  # claimed before claimed_at was recorded
    return obj.last_attempted_at is None or obj.last_attempted_at < obj.claimed_at
