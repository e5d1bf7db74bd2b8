"""What a schedule row runs, and whether it may: the one place that turns a row
into a ``django.tasks.Task`` for the scheduler, "run now" and the admin's form.

Rows from code are trusted. A row made in the admin is checked against the
backend's allow-lists (see ``allowed``) before anything is imported, and its
command runs through ``run_allowed_command``, which checks again where it runs.
A task path that names a command-running task is refused: it would run
whatever command its arguments name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.tasks import Task, task_backends

from offload import results
from offload.command_tasks import command_exists, is_command_runner
from offload.exceptions import (
    InvalidArguments,
    PayloadTooLarge,
    ScheduleNotAllowed,
    TaskNotImportable,
)
from offload.payload import encode_arguments
from offload.schedules.allowed import command_allowed, options_of, refusal, task_allowed
from offload.schedules.spec import ALLOWED_COMMAND_TASK_PATH, COMMAND_TASK_PATH, InvalidSchedule

if TYPE_CHECKING:
    from offload.backend import DatabaseBackend
    from offload.models import Schedule


def _import_task(path: str) -> Task[..., Any]:
    """The Task at ``path``; a path that is not one is the schedule's own error."""
    try:
        return results.resolve_task(path)
    except TaskNotImportable as exc:
        raise InvalidSchedule(str(exc).rstrip(".")) from None


def permission_problem(row: Schedule) -> str | None:
    """Why a row made in the admin may not run what it names, or None; imports nothing."""
    if row.from_code:
        return None
    options = options_of(row.backend)
    if row.command:
        if not command_allowed(options, row.command):
            return refusal("command", row.command, row.backend)
    elif not task_allowed(options, row.task_path):
        return refusal("task", row.task_path, row.backend)
    return None


def resolve_task(row: Schedule) -> Task[..., Any]:
    """The task ``row`` enqueues; ``ScheduleNotAllowed`` (before any import) if a row
    made in the admin names what its backend does not allow, ``InvalidSchedule``
    if the path does not lead to a Task."""
    reason = permission_problem(row)
    if reason is not None:
        raise ScheduleNotAllowed(reason)
    if row.command:
        return _import_task(COMMAND_TASK_PATH if row.from_code else ALLOWED_COMMAND_TASK_PATH)
    found = _import_task(row.task_path)
    if not row.from_code and is_command_runner(found):
        raise ScheduleNotAllowed(
            f"task {row.task_path!r} runs management commands: a schedule made in the "
            "admin gives the command in its command field instead"
        )
    return found


def enqueue_for(row: Schedule, backend: DatabaseBackend) -> int:
    """Enqueue the row's task on ``backend`` now; return the new task's id."""
    task = resolve_task(row)
    changes: dict[str, Any] = {"backend": backend.alias}
    if row.queue_name:
        changes["queue_name"] = row.queue_name
    if row.priority is not None:
        changes["priority"] = row.priority
    args = [row.command, *row.args] if row.command else list(row.args)
    result = task.using(**changes).enqueue(*args, **row.kwargs)
    return int(result.id)


def admin_problems(row: Schedule) -> dict[str, str]:
    """Field -> problem for a row saved in the admin, beyond its own shape
    (``spec.check_row``): the backend, the allow-lists, that the command or task
    exists, and the queue (the priority's range is the model's own check)."""
    from offload.backend import DatabaseBackend

    problems: dict[str, str] = {}
    backend = task_backends[row.backend] if options_of(row.backend) else None
    if not isinstance(backend, DatabaseBackend):
        return {"backend": f"{row.backend!r} is not an offload backend in TASKS."}
    reason = permission_problem(row)
    if reason is not None:
        problems["command" if row.command else "task_path"] = reason[0].upper() + reason[1:] + "."
    elif row.command and not command_exists(row.command):
        problems["command"] = f"{row.command!r} is not a management command of this project."
    elif row.task_path:
        try:
            resolve_task(row)
        except (InvalidSchedule, ScheduleNotAllowed) as exc:
            problems["task_path"] = str(exc)[0].upper() + str(exc)[1:] + "."
    if row.queue_name and backend.queues and row.queue_name not in backend.queues:
        allowed = ", ".join(sorted(backend.queues))
        problems["queue_name"] = f"Not in the backend's QUEUES ({allowed})."
    try:
        # The checks every enqueue makes, so a value the database would refuse
        # (a NUL on PostgreSQL, nesting past MariaDB's limit) is a form error.
        encode_arguments(
            row.args,
            row.kwargs,
            backend.config.max_payload_bytes,
            backend.config.max_argument_depth,
        )
    except (InvalidArguments, PayloadTooLarge) as exc:
        problems["args"] = str(exc)
    return problems
