"""The Schedule admin: create, edit, pause, resume and run schedules now; see their
next fire times, their last runs with outcomes, and their last error.

What a schedule made here may run is what the backend's
``OPTIONS["SCHEDULE_ADMIN_COMMANDS"]`` and ``["SCHEDULE_ADMIN_TASKS"]`` allow
(nothing by default); the form refuses anything else, and so do the scheduler
and "run now" (see ``offload.schedules.targets``). Schedules that come from
code keep their definition read-only here (the next worker start would
overwrite an edit); they can still be paused, resumed and run now.

Every page carries the Content-Security-Policy, and arguments with
secret-looking names are masked wherever they are shown.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.tasks import task_backends
from django.urls import URLPattern
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from offload.admin.backend_choice import BackendChoice, chosen_database
from offload.admin.display import as_json, compact_time, cut_text
from offload.admin.list_params import StrictListParams, text_check
from offload.admin.masking import mask_secrets, restore_masked
from offload.admin.options import admin_options, backend_named, backends
from offload.admin.security import csp_urls
from offload.backend import DatabaseBackend
from offload.limits import MAX_NAME_LENGTH
from offload.models import Schedule, ScheduleFire, TaskRecord
from offload.schedules.firing import run_now
from offload.schedules.listing import describe, next_fires
from offload.schedules.targets import admin_problems

RECENT_RUNS = 10
UPCOMING = 5

# What a sync from code sets: read-only on rows from code.
_DEFINITION = (
    "name", "backend", "task_path", "command", "cron", "interval", "timezone", "args",
    "kwargs", "queue_name", "priority", "catch_up", "skip_if_running",
)  # fmt: skip
_TIMING = ("cron", "interval", "timezone")
_STATE = ("next_fire_times", "recent_runs", "next_fire_at", "last_fired_at", "last_error",
          "last_error_at")  # fmt: skip


# The stubs make ModelAdmin and ModelForm generic; at runtime they are not subscriptable.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Schedule]
    _ModelForm = forms.ModelForm[Schedule]
else:
    _ModelAdmin = admin.ModelAdmin
    _ModelForm = forms.ModelForm


class _ArgumentsField(forms.JSONField):
    """Django's JSON form field, shown with ``\\u`` escapes when the value holds a
    lone surrogate: re-showing a refused value must not fail the page, which
    cannot encode one as UTF-8."""

    def prepare_value(self, value: Any) -> Any:
        shown = super().prepare_value(value)
        try:
            shown.encode()
        except UnicodeEncodeError:
            return json.dumps(value, ensure_ascii=True, cls=self.encoder)
        except AttributeError:
            pass
        return shown


class ScheduleForm(_ModelForm):
    """Shows arguments masked, keeps the stored value of a masked one, and refuses
    what the backend does not allow (see ``targets.admin_problems``), or a backend
    that keeps its schedules on another database than the page's."""

    # The page's database (``ScheduleAdmin.get_form``): a new row's constraints
    # are checked there (see ``offload.routers``).
    database: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.database is not None and self.instance._state.adding:
            self.instance._state.db = self.database
        for name in ("args", "kwargs"):
            if name in self.fields and self.instance.pk is not None:
                self.initial[name] = mask_secrets(getattr(self.instance, name))

    def _unmasked(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        if self.instance.pk is None:
            return value
        return restore_masked(value, getattr(self.instance, name))

    def clean_args(self) -> Any:
        return self._unmasked("args")

    def clean_kwargs(self) -> Any:
        return self._unmasked("kwargs")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.from_code or self.errors:
            return cleaned
        row = copy.copy(self.instance)
        for name, value in cleaned.items():
            setattr(row, name, value)
        for name, problem in admin_problems(row).items():
            self.add_error(name if name in self.fields else None, problem)
        backend, using = backend_named(row.backend or None), self.instance._state.db
        if backend is not None and using is not None and backend.config.database != using:
            # Its scheduler reads its own database: the row would never fire.
            self.add_error(
                "backend",
                f"{row.backend!r} keeps its schedules on database {backend.config.database!r}, "
                f"this page shows database {using!r}: make it on that backend's page "
                f"(?backend={row.backend}).",
            )
        return cleaned


def _slashed(name: str) -> list[str]:
    parts = name.split("/")
    return [part + "/" for part in parts[:-1]] + parts[-1:]


def _shown_target(row: Schedule) -> str:
    """What the schedule runs, as a person would type it, secrets masked."""
    if row.command:
        return " ".join(["manage.py", row.command, *map(str, mask_secrets(row.args))])
    return row.task_path


class BackendFilter(admin.SimpleListFilter):
    """The schedules of one backend, among those on the database shown (the
    switch's ``?backend=`` picks the database; several backends may share one)."""

    title = "backend"
    parameter_name = "schedule_backend"
    check_value = staticmethod(text_check(MAX_NAME_LENGTH, allow_empty=False))

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        using = chosen_database(request)
        return [(b.alias, b.alias) for b in backends() if b.config.database == using]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(backend=value)


class ScheduleAdmin(BackendChoice, StrictListParams, _ModelAdmin):
    form = ScheduleForm
    list_display = (
        "schedule_name", "runs", "when", "zone", "enabled", "next_fire", "last_fired", "error",
    )  # fmt: skip
    list_filter = ("enabled", "from_code", BackendFilter, "catch_up")
    change_list_template = "admin/offload/schedule_change_list.html"
    formfield_overrides = {models.JSONField: {"form_class": _ArgumentsField}}
    search_fields = ("name", "task_path", "command")

    class Media:
        css = {"all": ("offload/admin.css",)}

    actions = ("pause", "resume", "run_now")
    fieldsets = (
        (None, {"fields": ("name", "backend", "enabled", "from_code")}),
        (
            "What it runs",
            {"fields": ("task_path", "command", "args", "kwargs", "queue_name", "priority")},
        ),
        ("When", {"fields": ("cron", "interval", "timezone", "catch_up", "skip_if_running")}),
        ("State", {"fields": _STATE}),
    )

    def get_form(
        self, request: HttpRequest, obj: Schedule | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"database": chosen_database(request)})

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        fixed = ("from_code", *_STATE)
        if obj is not None and obj.from_code:
            return (*fixed, *_DEFINITION, "args_shown", "kwargs_shown")
        return fixed

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        if obj is None or not obj.from_code:
            return self.fieldsets
        # Read-only JSON would be shown as stored: show it masked instead.
        swap: dict[Any, Any] = {"args": "args_shown", "kwargs": "kwargs_shown"}
        return [
            (title, {**options, "fields": [swap.get(f, f) for f in options["fields"]]})
            for title, options in self.fieldsets or ()
        ]

    # -- pages: every one carries the Content-Security-Policy ------------------------

    def get_urls(self) -> list[URLPattern]:
        # Every page of this admin, Django's own (history, delete) included.
        return csp_urls(super().get_urls())

    # -- columns and read-only fields -------------------------------------------------

    @admin.display(description="name", ordering="name")
    def schedule_name(self, obj: Schedule) -> str:
        # Whether it comes from code is a filter, and a note here: not a column of its own.
        if obj.from_code:
            return format_html("{} <small>(from code)</small>", obj.name)
        return obj.name

    @admin.display(description="runs")
    def runs(self, obj: Schedule) -> str:
        return cut_text(_shown_target(obj))

    @admin.display(description="when")
    def when(self, obj: Schedule) -> str:
        # The cron expression or interval alone, on one line; the zone has its column.
        if obj.interval or not obj.cron:
            return describe(obj)
        return obj.cron

    @admin.display(description="time zone")
    def zone(self, obj: Schedule) -> str:
        if obj.interval or not obj.cron:
            return "-"
        # A break after each "/" lets a long zone name wrap there, never mid-word.
        return format_html_join(mark_safe("<wbr>"), "{}", ((p,) for p in _slashed(obj.timezone)))

    @admin.display(description="next fire", ordering="next_fire_at")
    def next_fire(self, obj: Schedule) -> str:
        return compact_time(obj.next_fire_at)

    @admin.display(description="last fired", ordering="last_fired_at")
    def last_fired(self, obj: Schedule) -> str:
        return compact_time(obj.last_fired_at)

    @admin.display(description="error")
    def error(self, obj: Schedule) -> str:
        return obj.last_error[:100] if obj.last_error else ""

    @admin.display(description="args")
    def args_shown(self, obj: Schedule) -> str:
        return as_json(mask_secrets(obj.args))

    @admin.display(description="kwargs")
    def kwargs_shown(self, obj: Schedule) -> str:
        return as_json(obj.kwargs)

    @admin.display(description=f"next {UPCOMING} fire times")
    def next_fire_times(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "-"
        if not obj.enabled:
            return "paused"
        fires = next_fires(obj, timezone.now(), UPCOMING)
        if isinstance(fires, str):
            return fires
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>",
                           ((f.isoformat(),) for f in fires)))  # fmt: skip

    @admin.display(description="last runs")
    def recent_runs(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "-"
        using = obj._state.db  # its fires and their tasks are on its database
        fires = list(
            ScheduleFire.objects.using(using)
            .filter(schedule=obj)
            .order_by("-fire_at")[:RECENT_RUNS]
        )
        status = dict(
            TaskRecord.objects.using(using).filter(pk__in=[f.task_id for f in fires if f.task_id])
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
        self, request: HttpRequest, obj: Schedule, form: forms.ModelForm[Any], change: bool
    ) -> None:
        # A new, re-timed or resumed schedule starts from its next tick: no
        # catch-up of ticks that were never its own, or of a pause.
        resumed = "enabled" in form.changed_data and obj.enabled
        if not change or resumed or any(field in form.changed_data for field in _TIMING):
            obj.next_fire_at = None
        if any(field in form.changed_data for field in _DEFINITION):
            obj.last_error, obj.last_error_at = "", None  # the next pass says if it still fails
        super().save_model(request, obj, form, change)

    # -- actions: the change permission, at most SCHEDULE_ADMIN_ACTION_LIMIT rows,
    # -- one LogEntry per schedule ----------------------------------------------------

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Schedule],
        verb: str,
        act: Callable[[Schedule], str | None],
    ) -> None:
        """Run ``act`` on each selected row (it returns the log message, or None if
        there was nothing to do); refuse a selection over the limit outright."""
        limit = admin_options().schedule_admin_action_limit
        rows = list(queryset.order_by("pk")[: limit + 1])
        if len(rows) > limit:
            self.message_user(
                request,
                f"Select at most {limit} schedules for one action "
                "(OPTIONS['SCHEDULE_ADMIN_ACTION_LIMIT']); nothing was done.",
                messages.ERROR,
            )
            return
        done = 0
        for row in rows:
            message = act(row)
            if message is not None:
                self.log_change(request, row, message)
                done += 1
        self.message_user(request, f"{verb} {done} schedule(s).", messages.SUCCESS)

    @admin.action(description="Pause the selected schedules", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        def act(row: Schedule) -> str | None:
            rows = Schedule.objects.using(row._state.db)
            changed = rows.filter(pk=row.pk, enabled=True).update(enabled=False)
            return "Paused (admin action)." if changed else None

        self._each(request, queryset, "Paused", act)

    @admin.action(
        description="Resume the selected schedules (from their next tick)", permissions=["change"]
    )
    def resume(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        def act(row: Schedule) -> str | None:
            rows = Schedule.objects.using(row._state.db)
            changed = rows.filter(pk=row.pk, enabled=False).update(enabled=True, next_fire_at=None)
            return "Resumed from its next tick (admin action)." if changed else None

        self._each(request, queryset, "Resumed", act)

    @admin.action(description="Run the selected schedules now", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        def act(row: Schedule) -> str | None:
            backend = task_backends[row.backend] if row.backend in task_backends.settings else None
            if not isinstance(backend, DatabaseBackend):
                self.message_user(
                    request, f"{row.name}: {row.backend!r} is not an offload backend.",
                    messages.ERROR,
                )  # fmt: skip
                return None
            try:
                # Checks what the row may run before importing anything.
                task_id = run_now(row, backend, timezone.now())
            except Exception as exc:
                self.message_user(request, f"{row.name}: {exc}", messages.ERROR)
                return None
            self.message_user(request, f"{row.name}: enqueued task {task_id}.", messages.SUCCESS)
            return f"Ran now (admin action): task {task_id}."

        self._each(request, queryset, "Ran", act)


admin.site.register(Schedule, ScheduleAdmin)
