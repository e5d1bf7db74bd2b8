"""Moving the tasks still waiting in django-tasks-db's table into offload's.

django-tasks-db is another database backend for ``django.tasks``. A project
that switches to offload keeps, in that backend's table, the tasks nobody ran
yet. ``move_waiting_tasks`` enqueues each ``READY`` one through offload's
backend, with its arguments, queue, priority and ``run_after``, and deletes it
from the old table in the same transaction, one batch at a time: whatever
happens, every task is in exactly one of the two tables. A task that cannot
move (its path no longer imports, or offload refuses it: a queue the backend
does not serve, arguments that do not fit the function) stays where it was
and is reported with the reason. ``RUNNING`` tasks belong to the old worker
and are left alone: stop ``db_worker`` once it has finished them.

It runs in a data migration of the project (``migration_operation``), so the
move happens once, with ``migrate``, or from a shell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db import DEFAULT_DB_ALIAS, DatabaseError, migrations, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.tasks import Task, task_backends
from django.tasks.exceptions import InvalidTask
from django.utils.module_loading import import_string

from offload.backend import DatabaseBackend
from offload.exceptions import TasksDbNotInstalled

APP_LABEL = "django_tasks_database"  # django-tasks-db's app label
MODEL = "DBTaskResult"


@dataclass
class MoveReport:
    # Old id (django-tasks-db's UUID) -> the new task's id in offload.
    moved: dict[str, str] = field(default_factory=dict)
    # Old id -> why it stayed in the old table.
    left: dict[str, str] = field(default_factory=dict)
    # Tasks the old worker was running: not moved.
    running: int = 0


def move_waiting_tasks(
    *,
    apps: Apps | None = None,
    using: str = DEFAULT_DB_ALIAS,
    backend: str = "default",
    batch_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> MoveReport:
    """Move django-tasks-db's waiting tasks on database ``using`` into the offload
    backend ``backend`` (which must store its tasks on that same database, so
    that each batch moves in one transaction). ``apps`` is a migration's
    historical registry, or None outside a migration. ``progress(done, total)``
    is called after each batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    target = _offload_backend(backend, using)
    model = _old_model(apps or global_apps)
    rows = model._default_manager.db_manager(using)
    waiting = list(
        rows.filter(status="READY").order_by("enqueued_at", "pk").values_list("pk", flat=True)
    )
    report = MoveReport(running=rows.filter(status="RUNNING").count())
    for start in range(0, len(waiting), batch_size):
        batch = waiting[start : start + batch_size]
        with transaction.atomic(using=using):
            # Only rows still READY: one the old worker took meanwhile stays its own.
            for row in rows.select_for_update().filter(pk__in=batch, status="READY"):
                _move(row, target, using, report)
        if progress is not None:
            progress(min(start + batch_size, len(waiting)), len(waiting))
    return report


def migration_operation(*, backend: str = "default", batch_size: int = 500) -> migrations.RunPython:
    """A ``RunPython`` operation for a project's data migration; see the migration
    guide for the dependencies it needs. Going backwards moves nothing back."""

    def forwards(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        move_waiting_tasks(
            apps=apps, using=schema_editor.connection.alias, backend=backend,
            batch_size=batch_size,
        )  # fmt: skip

    return migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)


def _offload_backend(alias: str, using: str) -> DatabaseBackend:
    found = task_backends[alias]
    if not isinstance(found, DatabaseBackend):
        raise InvalidTask(f"TASKS[{alias!r}] is not an offload backend; tasks move into one.")
    if found.config.database != using:
        raise InvalidTask(
            f"TASKS[{alias!r}] stores its tasks on database {found.config.database!r}, not "
            f"{using!r}: the move enqueues and deletes in one transaction, on one database."
        )
    return found


def _old_model(apps: Apps) -> Any:
    try:
        return apps.get_model(APP_LABEL, MODEL)
    except LookupError:
        raise TasksDbNotInstalled(
            "django-tasks-db's app (django_tasks_db) is not installed here, so there is no "
            "table to move tasks from. Keep it in INSTALLED_APPS until the move is done."
        ) from None


def _move(row: Any, target: DatabaseBackend, using: str, report: MoveReport) -> None:
    old_id = str(row.pk)
    try:
        task = import_string(row.task_path)
    except ImportError as exc:
        report.left[old_id] = f"{row.task_path!r} does not import: {exc}"
        return
    if not isinstance(task, Task):
        report.left[old_id] = f"{row.task_path!r} is not a django.tasks Task"
        return
    call = row.args_kwargs or {}
    try:
        # A savepoint: a refused or failed insert undoes itself only, not the batch.
        with transaction.atomic(using=using):
            moved = task.using(
                backend=target.alias,
                queue_name=row.queue_name,
                priority=row.priority,
                run_after=_run_after(row.run_after),
            )
            result = moved.enqueue(*call.get("args", []), **call.get("kwargs", {}))
            row.delete()
    except (InvalidTask, TypeError, ValueError, DatabaseError) as exc:
        report.left[old_id] = f"{type(exc).__name__}: {exc}"
        return
    report.moved[old_id] = str(result.id)


def _run_after(value: datetime | None) -> datetime | None:
    # django-tasks-db stores "no run_after" as the largest date it can.
    if value is None or value.year == 9999:
        return None
    return value
