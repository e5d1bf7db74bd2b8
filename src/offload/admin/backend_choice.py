"""``?backend=alias`` on the admin's task, worker and schedule pages: each reads
and writes the database of the offload backend chosen (the first backend's
without it, see ``offload.routers``), and its links keep the choice.

An unknown alias is a 400 that names the known ones. The dashboard and the
queues page read the same parameter (see ``dashboard`` and ``queues``).
"""

from typing import Any
from urllib.parse import parse_qsl

from django.contrib.admin import ModelAdmin
from django.contrib.admin.utils import NestedObjects
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import router
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.http import urlencode

from offload.admin.list_params import bad_request
from offload.admin.options import backend_problem, backend_switch, backends, database_of
from offload.store import TaskStore

BACKEND_VAR = "backend"


def chosen_alias(request: HttpRequest) -> str | None:
    """The ``?backend=`` of the request (None: the first backend's)."""
    return request.GET.get(BACKEND_VAR)


def chosen_database(request: HttpRequest) -> str:
    """The database of the backend the request chose (views refuse an unknown one first)."""
    return database_of(chosen_alias(request))


def chosen_store(request: HttpRequest) -> TaskStore:
    """The store the request's task operations act on."""
    return TaskStore(chosen_database(request))


def backend_query(request: HttpRequest) -> str:
    """``?backend=alias`` for a link that keeps the request's choice ('' without one)."""
    alias = chosen_alias(request)
    return "" if alias is None else "?" + urlencode({BACKEND_VAR: alias})


def database_query(using: str | None, sep: str = "?") -> str:
    """``?backend=alias`` (``sep`` first) for a link to a row read from ``using``:
    '' on the admin's own database, else the first backend on that one."""
    if using is None or using == database_of(None):
        return ""
    alias = next((b.alias for b in backends() if b.config.database == using), None)
    return "" if alias is None else sep + urlencode({BACKEND_VAR: alias})


class BackendChangeList(ChangeList):
    """A changelist that keeps ``?backend=`` in its links but filters no row on it
    (it picks the database, see ``BackendChoice.get_queryset``)."""

    def get_filters_params(self, params: Any = None) -> dict[str, Any]:
        found: dict[str, Any] = super().get_filters_params(params)
        found.pop(BACKEND_VAR, None)
        return found


def backend_check(value: str) -> str | None:
    """``list_params``' check of ``?backend=`` (the views refuse it first, with the aliases)."""
    return "names no offload backend" if backend_problem(value) is not None else None


class BackendChoice:
    """A ModelAdmin mixin (first in the bases): every page, read and write of the
    admin goes to the database of the backend ``?backend=`` names."""

    # The parameter StrictListParams lets through to the list.
    extra_list_params = {BACKEND_VAR: backend_check}

    def backend_refusal(self, request: HttpRequest) -> HttpResponse | None:
        """The 400 for an unknown ``?backend=``, after the permission check (the
        message lists the aliases)."""
        alias = chosen_alias(request)
        if alias is None:
            return None
        admin: ModelAdmin[Any] = self  # type: ignore[assignment]
        if not admin.has_module_permission(request):
            raise PermissionDenied
        problem = backend_problem(alias)
        return bad_request(problem) if problem is not None else None

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        refusal = self.backend_refusal(request)
        if refusal is not None:
            return refusal
        # The switch's links start a fresh list: filters rarely mean the same elsewhere.
        context = {**backend_switch(chosen_alias(request)), "query_prefix": ""}
        context.update(extra_context or {})
        return super().changelist_view(request, context)  # type: ignore[misc, no-any-return]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        refusal = self.backend_refusal(request)
        if refusal is not None:
            return refusal
        context = {"backend_query": backend_query(request), **(extra_context or {})}
        return super().changeform_view(request, object_id, form_url, context)  # type: ignore[misc, no-any-return]

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        refusal = self.backend_refusal(request)
        if refusal is not None:
            return refusal
        return super().delete_view(request, object_id, extra_context)  # type: ignore[misc, no-any-return]

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        refusal = self.backend_refusal(request)
        if refusal is not None:
            return refusal
        return super().history_view(request, object_id, extra_context)  # type: ignore[misc, no-any-return]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        found: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        return found.using(chosen_database(request))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BackendChangeList

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.save(using=chosen_database(request))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        obj.delete(using=chosen_database(request))

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[Any, int], set[str], list[Any]]:
        admin: ModelAdmin[Any] = self  # type: ignore[assignment]
        using = chosen_database(request)
        if using == (router.db_for_write(admin.model) or "default"):
            return super().get_deleted_objects(objs, request)  # type: ignore[misc, no-any-return]
        # Django's summary collects on the router's database: collect on this one.
        collector = NestedObjects(using=using, origin=objs)
        collector.collect(objs)
        found: dict[Any, set[Model]] = dict(collector.model_objs)  # keyed by model class
        counts = {model._meta.verbose_name_plural: len(rows) for model, rows in found.items()}
        needed = set() if admin.has_delete_permission(request) else {str(admin.opts.verbose_name)}
        protected = [str(row) for row in collector.protected]
        return collector.nested(str), counts, needed, protected

    def get_preserved_filters(self, request: HttpRequest) -> str:
        # Django carries the list's query to the pages it links to: the choice
        # rides along, on those pages and back to the list.
        preserved: str = super().get_preserved_filters(request)  # type: ignore[misc]
        alias = chosen_alias(request)
        if alias is None:
            return preserved
        listed = QueryDict(dict(parse_qsl(preserved)).get("_changelist_filters", ""), mutable=True)
        listed[BACKEND_VAR] = alias
        return urlencode({"_changelist_filters": listed.urlencode(), BACKEND_VAR: alias})
