"""The offload admin pages before ``migrate``: a page that says what to do
(status 503), not a server error.

Wraps the views of every offload ``ModelAdmin`` of a site: a ``DatabaseError``
while a page is built or rendered is answered with :mod:`offload.tables`' one
message when offload's tables on the page's database are missing or behind,
and raised as it was otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.admin import AdminSite, ModelAdmin
from django.db import DatabaseError, router
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse
from django.urls import URLPattern
from django.utils.html import format_html

from offload.tables import tables_problem

PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    "<title>Offload: database not ready</title></head><body>"
    "<h1>Offload's tables are not ready</h1><p>{}</p>"
    "<p>Then reload this page.</p></body></html>"
)


def guard(site: AdminSite) -> None:
    """Wrap the views of every offload ``ModelAdmin`` registered on ``site``."""
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label != "offload" or getattr(model_admin, "_tables_guarded", False):
            continue
        model_admin.get_urls = _guarded_urls(model_admin, model)  # type: ignore[method-assign]
        model_admin._tables_guarded = True  # type: ignore[attr-defined]


def _guarded_urls(
    model_admin: ModelAdmin[Any], model: type[Model]
) -> Callable[[], list[URLPattern]]:
    original = model_admin.get_urls

    def get_urls() -> list[URLPattern]:
        patterns = original()
        for pattern in patterns:
            pattern.callback = _guarded_view(pattern.callback, model)
        return patterns

    return get_urls


def _guarded_view(view: Callable[..., HttpResponse], model: type[Model]) -> Callable[..., Any]:
    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
            if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
                # A change list runs its queries while it renders.
                response.render()
        except DatabaseError:
            problem = tables_problem(router.db_for_read(model) or "default")
            if problem is None:
                raise
            return HttpResponse(format_html(PAGE, problem), status=503)
        return response

    return guarded
