"""A list action on a fixed, bounded, confirmed set of tasks.

* The set is fixed when the action starts: its ids are read first (at most
  ``OPTIONS["ADMIN_ACTION_LIMIT"]`` of them), then acted on. Paging over the
  live queryset instead would see the rows the action itself adds (run again
  as a copy would copy its own copies, without end).
* Acting on everything a filter matches ("Select all") shows a confirmation
  page with the count first; so does every delete. The confirmation carries
  the highest id matched then, so rows added since are left out.
* More than the limit is refused with a message, and nothing is done.
* The permission is checked here too (403), not only by Django's choice of
  actions to show.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from offload.admin.options import admin_options
from offload.admin.security import require_perm, with_csp
from offload.admin.task_operations import OPERATIONS

CONFIRM_FIELD = "offload_confirm"
BOUND_FIELD = "offload_bound"
BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class BulkAction:
    """One list action: the operation it runs and how it is confirmed."""

    name: str  # the action's name in the list's form
    operation: str  # a key of task_operations.OPERATIONS
    title: str  # "Retry", "Delete" ...
    always_confirm: bool = False

    @property
    def permission(self) -> str:
        return f"{OPERATIONS[self.operation][1]}_taskrecord"


def _bound(request: HttpRequest) -> int | None:
    raw = request.POST.get(BOUND_FIELD, "")
    if not raw.isdecimal() or len(raw) > 19 or int(raw) > BIGINT_MAX:
        return None
    return int(raw)


def _refuse(request: HttpRequest, count: int, limit: int) -> None:
    messages.error(
        request,
        f"{count:,}{'+' if count > limit else ''} tasks match: one action may act on at "
        f"most {limit:,} (OPTIONS['ADMIN_ACTION_LIMIT']). Narrow the filter; nothing was done.",
    )


def run(
    model_admin: Any, request: HttpRequest, queryset: QuerySet[Any], action: BulkAction
) -> HttpResponse | None:
    """Run ``action`` on ``queryset`` (the selection, or all the filter matches).

    Returns the confirmation page, or None: Django then redirects to the list.
    """
    require_perm(request, action.permission)
    limit = admin_options().admin_action_limit
    across = request.POST.get("select_across") == "1"
    if across or action.always_confirm:
        if request.POST.get(CONFIRM_FIELD) != "yes":
            return _confirmation(model_admin, request, queryset, action, limit)
        bound = _bound(request)
        if bound is None:
            messages.error(request, "The confirmation was incomplete; nothing was done.")
            return None
        queryset = queryset.filter(pk__lte=bound)
    ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: limit + 1])
    if len(ids) > limit:
        _refuse(request, len(ids), limit)
        return None
    if not ids:
        messages.warning(request, "No task matches any more; nothing was done.")
        return None
    OPERATIONS[action.operation][0](request, ids)
    return None


def _confirmation(
    model_admin: Any,
    request: HttpRequest,
    queryset: QuerySet[Any],
    action: BulkAction,
    limit: int,
) -> HttpResponse | None:
    count = int(queryset[: limit + 1].count())
    if count > limit:
        _refuse(request, count, limit)
        return None
    if not count:
        messages.warning(request, "No task matches; nothing was done.")
        return None
    bound = queryset.order_by("-pk").values_list("pk", flat=True).first()
    selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)[: limit + 1]
    hidden = [
        ("action", action.name),
        ("index", "0"),
        ("select_across", request.POST.get("select_across", "0")),
        (BOUND_FIELD, str(bound)),
        (CONFIRM_FIELD, "yes"),
        *((helpers.ACTION_CHECKBOX_NAME, pk) for pk in selected),
    ]
    filters = [(k, v) for k, v in request.GET.items() if k not in ("p", "o")]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.title}: {count:,} task(s)?",
        "opts": model_admin.opts,
        "action": action,
        "count": count,
        "bound": bound,
        "limit": limit,
        "filters": filters,
        "search": request.GET.get("q", ""),
        "hidden": hidden,
        "post_url": request.get_full_path(),
    }
    response = TemplateResponse(request, "admin/offload/action_confirmation.html", context)
    return with_csp(response)
