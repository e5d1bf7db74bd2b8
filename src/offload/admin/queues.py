"""Queues: depth, age of the oldest due task, and pause / resume.

A queue is a name, not a row: the list joins the configured QUEUES, the queues
that have READY tasks, and the paused ones. A paused queue is not claimed (see
``TaskStore.claim``); its RUNNING tasks finish.

With several offload backends, ``?backend=alias`` shows the queues of that
backend's database (the first backend's by default), and pausing one there
pauses it on that database.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import router
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from offload.admin import audit
from offload.admin.display import human_seconds
from offload.admin.list_params import bad_request, problem_with
from offload.admin.options import (
    backend_named,
    backend_problem,
    backend_switch,
    configured_queues,
    database_of,
)
from offload.admin.security import csp_urls, csp_view, require_perm
from offload.limits import MAX_NAME_LENGTH
from offload.models import Queue, TaskRecord
from offload.store import TaskStore, operations, reads

# Django's ModelAdmin is generic only to the type checker.
if TYPE_CHECKING:
    ModelAdminBase = admin.ModelAdmin[Queue]
else:
    ModelAdminBase = admin.ModelAdmin


@dataclass(frozen=True)
class QueueRow:
    name: str
    ready: int
    due: int
    running: int
    oldest_due: datetime | None
    paused_at: datetime | None
    paused_by: str
    # Waiting on a concurrency limit (BLOCKED), counted apart from the depth.
    blocked: int = 0
    # Waiting on upstream tasks of a workflow (WAITING), counted apart too.
    waiting: int = 0

    @property
    def oldest_age(self) -> str:
        if self.oldest_due is None:
            return "-"
        return human_seconds(max((timezone.now() - self.oldest_due).total_seconds(), 0))


def queue_rows(alias: str | None = None) -> list[QueueRow]:
    """Every known queue with its numbers (see ``offload.store.reads.queue_depths``):
    of the offload backend ``alias``, or, for None, of the admin's database."""
    backend = backend_named(alias) if alias is not None else None
    if backend is None:
        using, names = router.db_for_read(TaskRecord) or "default", configured_queues()
    else:
        using, names = backend.config.database, sorted(backend.queues)
    depths = reads.queue_depths(using, names, timezone.now())
    return [QueueRow(**vars(depth)) for depth in depths]


@admin.register(Queue)
class QueueAdmin(ModelAdminBase):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # resuming is the way to remove a pause

    def get_urls(self) -> list[URLPattern]:
        return csp_urls(
            [
                path(
                    "pause/",
                    self.admin_site.admin_view(self.pause_view),
                    name="offload_queue_pause",
                ),
                path(
                    "resume/",
                    self.admin_site.admin_view(self.resume_view),
                    name="offload_queue_resume",
                ),
                path(
                    "",
                    self.admin_site.admin_view(self.changelist_view),
                    name="offload_queue_changelist",
                ),
            ]
        )

    @csp_view
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        # Only ?backend=; refuse anything else as every offload list does.
        problem = problem_with(request.GET, {"backend": backend_problem})
        if problem is not None:
            return bad_request(problem)
        alias = request.GET.get("backend")
        switch = backend_switch(alias)
        context = {
            **self.admin_site.each_context(request),
            "title": "Queues",
            "opts": self.opts,
            "rows": queue_rows(switch["backend"] if alias is not None else None),
            **switch,
            "can_change": self.has_change_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/offload/queues.html", context)

    def pause_view(self, request: HttpRequest) -> HttpResponse:
        return csp_view(require_POST(self._switch))(request, pause=True)

    def resume_view(self, request: HttpRequest) -> HttpResponse:
        return csp_view(require_POST(self._switch))(request, pause=False)

    def _switch(self, request: HttpRequest, *, pause: bool) -> HttpResponse:
        require_perm(request, "change_queue")
        name = request.POST.get("queue", "")
        alias = request.POST.get("backend") or None
        url = reverse("admin:offload_queue_changelist")
        back = HttpResponseRedirect(url + (f"?{urlencode({'backend': alias})}" if alias else ""))
        problem = backend_problem(alias) if alias is not None else None
        if problem is not None:
            return bad_request(problem)
        if not valid_queue_name(name):
            messages.error(
                request,
                f"A queue name is 1 to {MAX_NAME_LENGTH} characters, without control characters.",
            )
            return back
        store = TaskStore(database_of(alias))
        if pause:
            operations.pause_queue(store, name, by=request.user.get_username())
            messages.success(request, f"Paused queue {name!r}: workers no longer claim from it.")
        else:
            operations.resume_queue(store, name)
            messages.success(request, f"Resumed queue {name!r}.")
        audit.log_rows(
            request, Queue, [(name, name)], audit.CHANGE, "Paused." if pause else "Resumed."
        )
        return back


def valid_queue_name(name: str) -> bool:
    """1 to MAX_NAME_LENGTH characters, none of them a control character (NUL ...)."""
    return 0 < len(name) <= MAX_NAME_LENGTH and all(ch.isprintable() for ch in name)
