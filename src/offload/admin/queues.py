"""Queues: depth, age of the oldest due task, and pause / resume.

A queue is a name, not a row: the list joins the configured QUEUES, the queues
that have READY tasks, and the paused ones. A paused queue is not claimed (see
``TaskStore.claim``); its RUNNING tasks finish.
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
from django.views.decorators.http import require_POST

from offload.admin import audit
from offload.admin.display import human_seconds
from offload.admin.list_params import bad_request, problem_with
from offload.admin.options import admin_store, configured_queues
from offload.admin.security import csp_urls, csp_view, require_perm
from offload.limits import MAX_NAME_LENGTH
from offload.models import Queue, TaskRecord
from offload.store import operations, reads

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


def queue_rows() -> list[QueueRow]:
    """Every known queue with its numbers (see ``offload.store.reads.queue_depths``)."""
    using = router.db_for_read(TaskRecord) or "default"
    depths = reads.queue_depths(using, configured_queues(), timezone.now())
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
        # The page takes no parameters; refuse them as every offload list does.
        problem = problem_with(request.GET, {})
        if problem is not None:
            return bad_request(problem)
        context = {
            **self.admin_site.each_context(request),
            "title": "Queues",
            "opts": self.opts,
            "rows": queue_rows(),
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
        back = HttpResponseRedirect(reverse("admin:offload_queue_changelist"))
        if not valid_queue_name(name):
            messages.error(
                request,
                f"A queue name is 1 to {MAX_NAME_LENGTH} characters, without control characters.",
            )
            return back
        store = admin_store()
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
