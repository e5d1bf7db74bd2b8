"""The dashboard: a page in the admin (no urls.py change: it is the changelist of
the ``Dashboard`` proxy) and the JSON it refreshes itself from."""

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.cache import never_cache

from offload.admin.list_params import bad_request
from offload.admin.options import admin_options, backend_problem, backend_switch
from offload.admin.security import bounded_int, csp_urls, csp_view
from offload.admin.stats import WINDOWS, dashboard_data
from offload.models import Dashboard

# Django's ModelAdmin is generic only to the type checker.
if TYPE_CHECKING:
    ModelAdminBase = admin.ModelAdmin[Dashboard]
else:
    ModelAdminBase = admin.ModelAdmin

MIN_REFRESH_SECONDS = 1
MAX_REFRESH_SECONDS = 3600


@admin.register(Dashboard)
class DashboardAdmin(ModelAdminBase):
    def _allowed(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(
            user.is_active
            and user.is_staff
            and (
                user.has_perm("offload.view_taskrecord")
                or user.has_perm("offload.change_taskrecord")
            )
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return csp_urls(
            [
                path(
                    "data/",
                    self.admin_site.admin_view(self.data_view),
                    name="offload_dashboard_data",
                ),
                path(
                    "",
                    self.admin_site.admin_view(self.changelist_view),
                    name="offload_dashboard_changelist",
                ),
            ]
        )

    def _params(self, request: HttpRequest) -> tuple[str, int, str | None]:
        window = request.GET.get("window", "hour")
        if window not in WINDOWS:
            window = "hour"
        default = round(admin_options().dashboard_refresh_seconds)
        refresh = bounded_int(
            request.GET.get("refresh"), default, MIN_REFRESH_SECONDS, MAX_REFRESH_SECONDS
        )
        return window, refresh, request.GET.get("backend")

    @csp_view
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self._allowed(request):
            raise PermissionDenied
        window, refresh, alias = self._params(request)
        problem = backend_problem(alias) if alias is not None else None
        if problem is not None:
            return bad_request(problem)
        switch = backend_switch(alias)
        chosen = f"&backend={quote(alias)}" if alias is not None else ""
        context = {
            **self.admin_site.each_context(request),
            "title": "Task dashboard",
            "opts": self.opts,
            "window": window,
            "windows": list(WINDOWS),
            "refresh": refresh,
            "data_url": reverse("admin:offload_dashboard_data") + f"?window={window}{chosen}",
            **switch,
            # The switch's links keep the window and the refresh.
            "query_prefix": f"window={window}&refresh={refresh}&",
            "chosen": chosen,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/offload/dashboard.html", context)

    def data_view(self, request: HttpRequest) -> HttpResponse:
        return csp_view(never_cache(self._data))(request)

    def _data(self, request: HttpRequest) -> HttpResponse:
        if not self._allowed(request):
            raise PermissionDenied
        window, refresh, alias = self._params(request)
        problem = backend_problem(alias) if alias is not None else None
        if problem is not None:
            return bad_request(problem)
        data = dashboard_data(window, alias)
        return JsonResponse({**data, "refresh_seconds": refresh})
