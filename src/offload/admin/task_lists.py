"""The task lists: all tasks, and one list per status, each a ``TaskAdmin``
registered for its proxy model (the failed list adds the last error's message)."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest
from django.utils.safestring import SafeString

from offload.admin import display, last_error
from offload.admin.paging import BoundedChangeList
from offload.admin.tasks import TaskAdmin
from offload.models import (
    FailedTask,
    ReadyTask,
    RunningTask,
    ScheduledTask,
    SuccessfulTask,
    TaskRecord,
)
from offload.states import State


@admin.register(TaskRecord)
class AllTasksAdmin(TaskAdmin):
    pass


@admin.register(ReadyTask)
class ReadyTaskAdmin(TaskAdmin):
    status = State.READY


@admin.register(ScheduledTask)
class ScheduledTaskAdmin(TaskAdmin):
    status = "SCHEDULED"
    sortable_by = ("id", "enqueued", "runs_at")

    def get_ordering(self, request: HttpRequest) -> Any:
        # Soonest first. The sort reads only the scheduled rows (READY and not
        # yet due), not the whole table.
        return ["available_at", "id"]

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = [c for c in super().get_list_display(request) if c not in ("finished", "run_time")]
        return [*shown[:4], "runs_at", *shown[4:]]  # after the status


@admin.register(RunningTask)
class RunningTaskAdmin(TaskAdmin):
    status = State.RUNNING

    def get_list_display(self, request: HttpRequest) -> Any:
        shown = list(super().get_list_display(request))
        return [*shown[:4], "progress_column", *shown[4:]]  # after the status


class FailedChangeList(BoundedChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # Each shown row's last error, cut short by the database: never the whole column.
        rows = list(self.result_list)
        last_error.attach_last_errors(rows, self.root_queryset.db)
        self.result_list = rows


@admin.register(FailedTask)
class FailedTaskAdmin(TaskAdmin):
    status = State.FAILED

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return FailedChangeList

    def get_list_display(self, request: HttpRequest) -> Any:
        # The status is always "failed" here: its column gives way to the message.
        shown = [c for c in super().get_list_display(request) if c != "status_display"]
        return [*shown[:3], "error_message", *shown[3:]]

    @admin.display(description="message")
    def error_message(self, obj: TaskRecord) -> SafeString:
        return display.message_cell(
            getattr(obj, "last_error_class", None),
            getattr(obj, "last_error_head", None),
            getattr(obj, "last_error_tail", None),
            head_limit=last_error.HEAD_CHARS,
        )


@admin.register(SuccessfulTask)
class SuccessfulTaskAdmin(TaskAdmin):
    status = State.SUCCESSFUL

    def get_list_display(self, request: HttpRequest) -> Any:
        # Every row says "Successful": its place goes to how long each waited
        # before its code began (the list must fit 1280 px).
        shown = list(super().get_list_display(request))
        shown[shown.index("status_display")] = "waited"
        return shown
