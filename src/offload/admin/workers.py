"""Live worker processes: heartbeat age, what each runs now. Read-only."""

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Count, IntegerField, Model, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from offload.admin.backend_choice import BackendChoice, database_query
from offload.admin.display import human_seconds
from offload.admin.list_params import StrictListParams
from offload.admin.options import admin_options
from offload.admin.security import csp_urls
from offload.models import TaskRecord, WorkerRecord
from offload.states import State

# Django's ModelAdmin is generic only to the type checker.
if TYPE_CHECKING:
    ModelAdminBase = admin.ModelAdmin[WorkerRecord]
else:
    ModelAdminBase = admin.ModelAdmin

# Most current tasks listed on a worker's page (a process runs a few at a time).
MAX_CURRENT_TASKS = 100


@admin.register(WorkerRecord)
class WorkerAdmin(BackendChoice, StrictListParams, ModelAdminBase):
    list_display = (
        "name", "hostname", "pid", "supervisor_pid", "queues", "threads", "heartbeat_age",
        "running_tasks", "started_at",
    )  # fmt: skip
    list_filter = ("hostname",)
    sortable_by = ("name", "hostname", "heartbeat_at", "started_at")
    ordering = ("hostname", "supervisor_pid", "pid")
    search_fields = ("name", "hostname", "=id")
    show_full_result_count = False
    change_list_template = "admin/offload/worker_change_list.html"
    change_form_template = "admin/offload/worker_change_form.html"
    readonly_fields = (
        "id", "name", "hostname", "pid", "supervisor_pid", "backend", "queues", "threads",
        "started_at", "heartbeat_at", "heartbeat_age", "current_tasks",
    )  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return csp_urls(super().get_urls())

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # rows are the workers' own heartbeats

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkerRecord]:
        # One correlated count per listed row (a page), served by the lease index.
        running = (
            TaskRecord.objects.filter(status=State.RUNNING, lease_owner=OuterRef("pk"))
            .order_by()
            .values("lease_owner")
            .annotate(n=Count("id"))
            .values("n")
        )
        rows: QuerySet[WorkerRecord] = super().get_queryset(request)
        return rows.annotate(running=Coalesce(Subquery(running, output_field=IntegerField()), 0))

    @admin.display(description="heartbeat", ordering="heartbeat_at")
    def heartbeat_age(self, obj: WorkerRecord) -> SafeString:
        age = (timezone.now() - obj.heartbeat_at).total_seconds()
        text = f"{human_seconds(max(age, 0))} ago"
        # Older than a lease: the rescue may already have given its tasks away.
        if age > admin_options().lease_seconds:
            return format_html('<span class="offload-stale">{} (stale)</span>', text)
        return format_html("{}", text)

    @admin.display(description="running tasks")
    def running_tasks(self, obj: WorkerRecord) -> SafeString:
        count = getattr(obj, "running", 0)
        if not count:
            return format_html("{}", 0)
        url = reverse("admin:offload_taskrecord_changelist") + "?" + urlencode({"worker": obj.pk})
        return format_html('<a href="{}">{}</a>', url + database_query(obj._state.db, "&"), count)

    @admin.display(description="current tasks")
    def current_tasks(self, obj: WorkerRecord) -> SafeString:
        # On the worker row's own database, and so are the links.
        tasks = (
            TaskRecord.objects.using(obj._state.db)
            .filter(status=State.RUNNING, lease_owner=obj.pk)
            .only("id", "task_path")[:MAX_CURRENT_TASKS]
        )
        query = database_query(obj._state.db)
        rows = [
            (reverse("admin:offload_taskrecord_change", args=[t.pk]) + query, t.pk, t.task_path)
            for t in tasks
        ]
        if not rows:
            return format_html("{}", "None")
        return format_html(
            "<ul>{}</ul>", format_html_join("", '<li><a href="{}">#{} {}</a></li>', rows)
        )
