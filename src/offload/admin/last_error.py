"""The last recorded error of each listed task, read in SQL and bounded there.

The failed list shows each task's message, which ends its last error's
traceback. The ``errors`` column may hold many long tracebacks, so the list
never loads it: the database picks the last element's class, the start of its
traceback (where the message begins after a usual stack of frames) and its end,
and only those few thousand characters cross the wire per row.
"""

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Func, TextField
from django.db.models.sql.compiler import SQLCompiler

from offload.models import TaskRecord

# Characters of the last traceback fetched per listed task, from its start and its end.
HEAD_CHARS = 8_000
TAIL_CHARS = 2_000
# Longest exception class path fetched.
CLASS_CHARS = 255


class LastErrorField(Func):
    """``errors[-1][key]``: its first ``length`` characters, or with ``tail`` its
    last ones (NULL without errors)."""

    output_field: Any = TextField()

    def __init__(self, key: str, length: int, *, tail: bool = False, **extra: Any) -> None:
        if not key.isidentifier():
            raise ValueError(f"not a JSON key this reads: {key!r}")
        self.key, self.length, self.tail = key, int(length), tail
        super().__init__("errors", **extra)

    def _cut(self, value: str, vendor: str) -> str:
        if vendor == "sqlite":
            start = f"-{self.length}" if self.tail else "1"
            return f"SUBSTR({value}, {start}, {self.length})"
        return f"{'RIGHT' if self.tail else 'LEFT'}({value}, {self.length})"

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[str | int, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        vendor = connection.vendor
        if vendor == "postgresql":
            sql = self._cut(f"(({column} -> -1) ->> '{self.key}')", vendor)
        elif vendor == "mysql":
            # '$[last]' needs MariaDB 10.9; the index is computed for older ones.
            path = f"CONCAT('$[', JSON_LENGTH({column}) - 1, '].{self.key}')"
            value = self._cut(f"JSON_UNQUOTE(JSON_EXTRACT({column}, {path}))", vendor)
            sql = f"CASE WHEN JSON_LENGTH({column}) > 0 THEN {value} END"
        else:
            sql = self._cut(f"json_extract({column}, '$[#-1].{self.key}')", vendor)
        return sql, tuple(params) * sql.count(column)


def attach_last_errors(rows: list[TaskRecord], using: str) -> None:
    """Set ``last_error_class``, ``last_error_head`` and ``last_error_tail`` on
    each of a page's rows (read from database ``using``), in one query over
    those rows alone (never in the list's count, which would read the column of
    every counted row)."""
    found = {
        pk: (path, head, tail)
        for pk, path, head, tail in TaskRecord.objects.using(using)
        .filter(pk__in=[row.pk for row in rows])
        .annotate(
            last_error_class=LastErrorField("exception_class_path", CLASS_CHARS),
            last_error_head=LastErrorField("traceback", HEAD_CHARS),
            last_error_tail=LastErrorField("traceback", TAIL_CHARS, tail=True),
        )
        .values_list("pk", "last_error_class", "last_error_head", "last_error_tail")
    }
    for row in rows:
        parts = found.get(row.pk, (None, None, None))
        setattr(row, "last_error_class", parts[0])  # noqa: B010  (not a model field)
        setattr(row, "last_error_head", parts[1])  # noqa: B010
        setattr(row, "last_error_tail", parts[2])  # noqa: B010
