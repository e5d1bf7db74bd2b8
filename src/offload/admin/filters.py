"""The task list's filters. Each one is a range or equality on an index, and none
asks the database for its choices with a scan (no ``SELECT DISTINCT`` over the table).
Each says which values it takes (``check_value``); ``list_params`` refuses others."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from offload.admin.backend_choice import BACKEND_VAR, chosen_database
from offload.admin.list_params import choice_check, text_check
from offload.admin.options import configured_queues
from offload.limits import MAX_NAME_LENGTH
from offload.models import Queue, WorkerRecord
from offload.states import State

# The periods a date filter offers; nothing wider, so no filter reads years of rows.
PERIODS = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(days=1)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
WORKER_CHOICES = 50
BIGINT_MAX = 2**63 - 1


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"
    check_value = staticmethod(choice_check(set(State.values)))

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(value), str(label)) for value, label in State.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if value not in State.values:
            return queryset.none()
        return queryset.filter(status=value)


class QueueNameFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"
    check_value = staticmethod(text_check(MAX_NAME_LENGTH, allow_empty=False))

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = set(configured_queues())
        paused = Queue.objects.using(chosen_database(request))
        names.update(paused.values_list("name", flat=True)[:100])
        return [(name, name) for name in sorted(names)]

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if len(value) > MAX_NAME_LENGTH:
            return queryset.none()
        return queryset.filter(queue_name=value)


class TextFilter(admin.SimpleListFilter):
    """A filter typed as text, not picked from a list."""

    template = "admin/offload/text_filter.html"
    max_length = 255

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return []

    def has_output(self) -> bool:
        return True

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        # The template builds a GET form keeping every other parameter, the
        # backend chosen included (it filters nothing, so it is not among them).
        params = changelist.get_filters_params()
        if BACKEND_VAR in changelist.filter_params:
            params[BACKEND_VAR] = changelist.filter_params[BACKEND_VAR]
        others = [
            (key, value)
            for key, values in params.items()
            if key != self.parameter_name
            for value in (values if isinstance(values, list) else [values])
        ]
        yield {"value": self.value() or "", "others": others, "name": self.parameter_name}


class TaskPathFilter(TextFilter):
    title = "task path"
    parameter_name = "task"
    check_value = staticmethod(text_check(TextFilter.max_length))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if len(value) > self.max_length:
            return queryset.none()
        # Exact by default: equality on the (task_path, id) index gives rows
        # already in the list's order. A trailing "*" asks for a prefix
        # ("myapp.tasks.*"), which the index narrows but must then sort.
        if value.endswith("*"):
            return queryset.filter(task_path__startswith=value.rstrip("*"))
        return queryset.filter(task_path=value)


class PeriodFilter(admin.SimpleListFilter):
    field = ""
    check_value = staticmethod(choice_check(PERIODS))

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _span) in PERIODS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if value not in PERIODS:
            return queryset.none()
        since = timezone.now() - PERIODS[value][1]
        return queryset.filter(**{f"{self.field}__gte": since})


class FinishedFilter(PeriodFilter):
    title = "finished"
    parameter_name = "finished"
    field = "finished_at"


class EnqueuedFilter(PeriodFilter):
    title = "enqueued"
    parameter_name = "enqueued"
    field = "enqueued_at"


class WorkerFilter(admin.SimpleListFilter):
    """Tasks a worker process is running now (its lease)."""

    title = "running on worker"
    parameter_name = "worker"
    check_value = staticmethod(text_check(MAX_NAME_LENGTH, allow_empty=False))

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        workers = WorkerRecord.objects.using(chosen_database(request)).order_by("-heartbeat_at")[
            :WORKER_CHOICES
        ]
        return [(worker.id, str(worker)) for worker in workers]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if len(value) > MAX_NAME_LENGTH:
            return queryset.none()
        # RUNNING first: the status index narrows to the few running rows.
        return queryset.filter(status=State.RUNNING, lease_owner=value)


def workflow_id_check(value: str) -> str | None:
    if not value:
        return None  # the box left empty: no filter
    if not value.isdecimal() or not value.isascii() or len(value) > 19 or int(value) > BIGINT_MAX:
        return "is not a workflow id (the id of the workflow's first task)"
    return None


class WorkflowFilter(TextFilter):
    """The tasks of one workflow, in the order it was built (its index:
    ``offload_task_workflow_idx``)."""

    title = "workflow id"
    parameter_name = "workflow_id"
    check_value = staticmethod(workflow_id_check)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if workflow_id_check(value) is not None:
            return queryset.none()
        return queryset.filter(workflow_id=int(value))
