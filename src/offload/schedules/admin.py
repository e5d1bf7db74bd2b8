"""The Schedule admin: create, edit, pause, resume and run schedules now; see their
next fire times and their last runs with outcomes.

Schedules that come from code keep their definition read-only here (the next
worker start would overwrite an edit); they can still be paused, resumed and
run now. Registered by ``OffloadConfig.ready()`` when the admin is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.tasks import task_backends
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from offload.models import Schedule, ScheduleFire, TaskRecord
from offload.schedules.firing import run_now
from offload.schedules.listing import describe, target, upcoming
from offload.schedules.spec import InvalidSchedule

RECENT_RUNS = 10
UPCOMING = 5

# What a sync from code sets: read-only on rows from code.
_DEFINITION = (
    "name", "backend", "task_path", "command", "cron", "interval", "timezone", "args",
    "kwargs", "queue_name", "priority", "catch_up", "skip_if_running",
)  # fmt: skip
_TIMING = ("cron", "interval", "timezone")


# The stubs make ModelAdmin generic; at runtime it is not subscriptable.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Schedule]
else:
    _ModelAdmin = admin.ModelAdmin


@admin.register(Schedule)
class ScheduleAdmin(_ModelAdmin):
    list_display = (
        "name", "runs", "when", "enabled", "from_code", "next_fire_at", "last_fired_at",
    )  # fmt: skip
    list_filter = ("enabled", "from_code", "backend", "catch_up")
    search_fields = ("name", "task_path", "command")
    actions = ("pause", "resume", "run_now")
    fieldsets = (
        (None, {"fields": ("name", "backend", "enabled", "from_code")}),
        (
            "What it runs",
            {"fields": ("task_path", "command", "args", "kwargs", "queue_name", "priority")},
        ),
        ("When", {"fields": ("cron", "interval", "timezone", "catch_up", "skip_if_running")}),
        (
            "State",
            {"fields": ("next_fire_times", "recent_runs", "next_fire_at", "last_fired_at")},
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        fixed = ("from_code", "next_fire_times", "recent_runs", "next_fire_at", "last_fired_at")
        if obj is not None and obj.from_code:
            return fixed + _DEFINITION
        return fixed

    @admin.display(description="runs")
    def runs(self, obj: Schedule) -> str:
        return target(obj)

    @admin.display(description="when")
    def when(self, obj: Schedule) -> str:
        return describe(obj)

    @admin.display(description=f"next {UPCOMING} fire times")
    def next_fire_times(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "-"
        if not obj.enabled:
            return "paused"
        try:
            fires = upcoming(obj, timezone.now(), UPCOMING)
        except InvalidSchedule as exc:
            return str(exc)
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>",
                           ((f.isoformat(),) for f in fires)))  # fmt: skip

    @admin.display(description="last runs")
    def recent_runs(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "-"
        fires = list(ScheduleFire.objects.filter(schedule=obj).order_by("-fire_at")[:RECENT_RUNS])
        status = dict(
            TaskRecord.objects.filter(pk__in=[f.task_id for f in fires if f.task_id])
            .values_list("pk", "status")
        )  # fmt: skip
        rows = (
            (
                fire.fire_at.isoformat(),
                fire.get_outcome_display(),
                f"task {fire.task_id}: {status.get(fire.task_id, 'pruned')}" if fire.task_id
                else "",
            )
            for fire in fires
        )  # fmt: skip
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} {} {}</li>", rows)) or "-"

    def save_model(
        self, request: HttpRequest, obj: Schedule, form: ModelForm[Any], change: bool
    ) -> None:
        # A new, re-timed or resumed schedule starts from its next tick: no
        # catch-up of ticks that were never its own, or of a pause.
        resumed = "enabled" in form.changed_data and obj.enabled
        if not change or resumed or any(field in form.changed_data for field in _TIMING):
            obj.next_fire_at = None
        super().save_model(request, obj, form, change)

    @admin.action(description="Pause the selected schedules")
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = queryset.update(enabled=False)
        self.message_user(request, f"Paused {count} schedule(s).", messages.SUCCESS)

    @admin.action(description="Resume the selected schedules (from their next tick)")
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = queryset.filter(enabled=False).update(enabled=True, next_fire_at=None)
        self.message_user(request, f"Resumed {count} schedule(s).", messages.SUCCESS)

    @admin.action(description="Run the selected schedules now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for row in queryset:
            try:
                task_id = run_now(row, task_backends[row.backend], timezone.now())  # type: ignore[arg-type]
            except Exception as exc:
                self.message_user(request, f"{row.name}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{row.name}: enqueued task {task_id}.", messages.SUCCESS
                )
