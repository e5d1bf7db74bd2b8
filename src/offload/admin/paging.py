"""Pages of a task list that never count or read the whole table."""

from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest

from offload.admin.backend_choice import BackendChangeList

# Django's Paginator is generic only to the type checker.
if TYPE_CHECKING:
    PaginatorBase = Paginator[Any]
else:
    PaginatorBase = Paginator


class CappedPaginator(PaginatorBase):
    """A paginator whose count stops at ``limit + 1`` rows."""

    def __init__(self, *args: Any, limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit

    @cached_property
    def count(self) -> int:
        # Slicing first makes Django count over a LIMITed subquery.
        queryset: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        return int(queryset[: self.limit + 1].count())

    @property
    def capped(self) -> bool:
        return self.count > self.limit


class BoundedChangeList(BackendChangeList):
    """A changelist whose page query always has a LIMIT.

    Django fetches an unsliced queryset when everything fits on one page (or
    "show all" is on); rows added after the count must not make that unbounded.
    """

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if not self.result_list.query.is_sliced:
            self.result_list = self.result_list[: self.list_max_show_all]
