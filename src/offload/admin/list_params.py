"""What an admin list accepts in its URL: Django's own list parameters, and the
parameters its filters offer, each with a value that filter can read. Anything
else (an unknown parameter, a lookup such as ``?args__contains=`` or
``?name__regex=``, a NUL character, a status that does not exist) gets a 400
that names the problem, before any query runs.

Django's admin otherwise accepts any lookup on a local field from the URL and
hands it to the database, where a bad value or an unsupported lookup is a
server error, and a harmless-looking one a full scan.

Use it on any ModelAdmin: put ``StrictListParams`` before ``ModelAdmin`` in the
bases. A ``SimpleListFilter`` may define ``check_value(value) -> str | None``
(the problem, or None); field filters are checked against their field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django.contrib.admin import FieldListFilter, ModelAdmin, SimpleListFilter
from django.contrib.admin import options as admin_options
from django.contrib.admin.options import IS_FACETS_VAR, IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import ALL_VAR, ERROR_FLAG, ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict

from offload.admin.security import with_csp

if TYPE_CHECKING:
    from django.db.models import Field

# A problem with a value, or None.
Check = Callable[[str], str | None]

# The admin's "source model" parameter of a related-object popup: Django 6.1
# names it SOURCE_MODEL_VAR, Django 6.0 has no such parameter.
SOURCE_MODEL_VAR: str = getattr(admin_options, "SOURCE_MODEL_VAR", "_source_model")
# Django's own list parameters: Django reads each one and bounds it itself.
DJANGO_PARAMS = frozenset(
    {
        ALL_VAR, ERROR_FLAG, IS_FACETS_VAR, IS_POPUP_VAR, ORDER_VAR, PAGE_VAR, SEARCH_VAR,
        SOURCE_MODEL_VAR, TO_FIELD_VAR,
    }
)  # fmt: skip
# Longest value any list parameter may have (the search box included).
MAX_VALUE_CHARS = 1000
BOOLEANS = frozenset({"0", "1", "True", "False", "true", "false"})


def text_check(max_length: int, *, allow_empty: bool = True) -> Check:
    """A check for free text of at most ``max_length`` characters."""

    def check(value: str) -> str | None:
        if not value and not allow_empty:
            return "must not be empty"
        if len(value) > max_length:
            return f"is longer than {max_length} characters"
        return None

    return check


def choice_check(choices: Mapping[str, Any] | set[str] | frozenset[str]) -> Check:
    """A check for one of ``choices``."""
    allowed = sorted(str(choice) for choice in choices)

    def check(value: str) -> str | None:
        if value in allowed:
            return None
        return f"must be one of {', '.join(allowed)}"

    return check


def field_check(field: Field[Any, Any], lookup: str) -> Check:
    """A check for the value of a field filter's ``<field>__<lookup>`` parameter."""

    def check(value: str) -> str | None:
        if lookup == "isnull":
            return None if value in BOOLEANS else "must be True or False"
        try:
            field.to_python(value)
        except (ValidationError, ValueError, TypeError):
            return f"is not a valid {type(field).__name__}"
        max_length = getattr(field, "max_length", None)
        if max_length is not None and len(value) > max_length:
            return f"is longer than {max_length} characters"
        if field.choices and lookup == "exact":
            known = {str(key) for key, _label in field.flatchoices}
            if value not in known:
                return f"must be one of {', '.join(sorted(known))}"
        return None

    return check


def filter_checks(model_admin: ModelAdmin[Any], request: HttpRequest) -> dict[str, Check]:
    """Parameter name -> check, for every parameter the list's filters offer, and
    those the ModelAdmin reads itself (its ``extra_list_params``)."""
    checks: dict[str, Check] = dict(getattr(model_admin, "extra_list_params", {}))
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type) and issubclass(item, SimpleListFilter):
            checks[str(item.parameter_name)] = getattr(item, "check_value", text_check(255))
            continue
        checks.update(_field_filter_checks(model_admin, request, item))
    return checks


def _field_filter_checks(
    model_admin: ModelAdmin[Any], request: HttpRequest, item: Any
) -> dict[str, Check]:
    # A field name, or (field name, filter class): the filter says which
    # parameters it reads, and the field which values make sense.
    field_path, filter_class = (item, None) if isinstance(item, str) else item
    model = model_admin.model
    field = get_fields_from_path(model, field_path)[-1]
    if filter_class is None:
        spec = FieldListFilter.create(field, request, {}, model, model_admin, field_path)
    else:
        spec = filter_class(field, request, {}, model, model_admin, field_path)
    target = getattr(field, "target_field", None) or field
    checks: dict[str, Check] = {}
    for param in spec.expected_parameters() or []:
        name = str(param)
        lookup = name.rsplit("__", 1)[-1] if "__" in name else "exact"
        checks[name] = field_check(target, lookup)
    return checks


def problem_with(params: QueryDict, checks: Mapping[str, Check]) -> str | None:
    """The first problem with a list URL's parameters, or None."""
    for name, values in params.lists():
        if name not in checks and name not in DJANGO_PARAMS:
            offered = ", ".join(sorted(checks)) or "none"
            return f"Unknown list parameter {name!r} (this list's filters: {offered})."
        for value in values:
            if "\x00" in value:
                return f"The value of {name!r} contains a NUL character."
            if len(value) > MAX_VALUE_CHARS:
                return f"The value of {name!r} is longer than {MAX_VALUE_CHARS} characters."
            check = checks.get(name)
            problem = check(value) if check is not None else None
            if problem:
                return f"The value of {name!r} {problem}."
    return None


def bad_request(problem: str) -> HttpResponse:
    """A plain-text 400 that says what was wrong."""
    response = HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
    return with_csp(response)


class StrictListParams:
    """A ModelAdmin mixin: its list refuses (400) any parameter its filters do not offer."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        admin: ModelAdmin[Any] = self  # type: ignore[assignment]
        if not admin.has_view_or_change_permission(request):
            raise PermissionDenied  # not a 400 for a user who may not see the list
        problem = problem_with(request.GET, filter_checks(admin, request))
        if problem is not None:
            return bad_request(problem)
        return super().changelist_view(request, extra_context)  # type: ignore[misc, no-any-return]

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The checks above have run; nothing else may reach the queryset.
        if request is None:
            return False
        admin: ModelAdmin[Any] = self  # type: ignore[assignment]
        return lookup in filter_checks(admin, request)
