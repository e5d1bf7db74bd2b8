"""``manage.py check``: schedules that cannot fire are errors naming the schedule.

Each schedule's problem is its own, never the backend's: a malformed entry of
``OPTIONS["SCHEDULES"]`` or ``@schedule`` declaration, task paths that do not import,
unknown commands, queues the backend does not allow, arguments that are not
plain JSON (``offload.E004``); and, where the database is checked, stored
schedules that cannot fire (``offload.W004``).
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db import DatabaseError

from offload.command_tasks import command_exists, run_allowed_command
from offload.exceptions import InvalidArguments, PayloadTooLarge, TaskNotImportable
from offload.payload import encode_arguments
from offload.results import resolve_task
from offload.schedules.spec import ScheduleSpec


def spec_problem(
    spec: ScheduleSpec,
    queues: set[str],
    max_payload_bytes: int,
    admin_commands: tuple[str, ...] = (),
) -> str | None:
    """Why ``spec`` cannot fire, or None."""
    if spec.command:
        if not command_exists(spec.command):
            return f"command {spec.command!r} is not a management command of this project"
    else:
        try:
            found = resolve_task(spec.task_path)
        except TaskNotImportable as exc:
            return str(exc).rstrip(".")
        if found.func is run_allowed_command.func and (
            not spec.args or spec.args[0] not in admin_commands
        ):
            # The old path of the command task now runs only the admin's commands.
            return (
                f"task {spec.task_path!r} runs only the commands in "
                "OPTIONS['SCHEDULE_ADMIN_COMMANDS']; give the command with 'command' instead"
            )
    if spec.queue_name and spec.queue_name not in queues:
        allowed = ", ".join(sorted(queues))
        return f"queue {spec.queue_name!r} is not in the backend's QUEUES ({allowed})"
    try:
        encode_arguments(spec.args, spec.kwargs, max_payload_bytes)
    except (InvalidArguments, PayloadTooLarge) as exc:
        return str(exc)
    return None


@checks.register()
def check_schedules(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from django.tasks import task_backends

    from offload.backend import DatabaseBackend
    from offload.schedules.sync import code_schedules

    messages: list[checks.CheckMessage] = []
    for backend in task_backends.all():
        if not isinstance(backend, DatabaseBackend) or backend.config.problems:
            continue
        specs, problems = code_schedules(backend)
        obj = f"TASKS[{backend.alias!r}]"
        messages.extend(checks.Error(problem, obj=obj, id="offload.E004") for problem in problems)
        for name, spec in specs.items():
            reason = spec_problem(
                spec,
                backend.queues,
                backend.config.max_payload_bytes,
                backend.config.schedule_admin_commands,
            )
            if reason:
                messages.append(
                    checks.Error(
                        f"Schedule {name!r}: {reason}.",
                        obj=f"TASKS[{backend.alias!r}]",
                        id="offload.E004",
                    )
                )
    return messages


# Most stored schedules the database check reads (per backend).
STORED_CHECK_LIMIT = 1000


def stored_problem(row: Any) -> str | None:
    """Why a stored schedule cannot fire, or None; imports nothing."""
    from offload.schedules.firing import timing_of
    from offload.schedules.targets import permission_problem

    if row.last_error:
        return f"its last pass failed ({row.last_error})"
    try:
        timing_of(row).next_after(datetime.now(UTC))
    except Exception as exc:
        return str(exc)
    return permission_problem(row)


@checks.register(checks.Tags.database)
def check_stored_schedules(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """Stored schedules (made in the admin, or from code) that cannot fire: a warning
    each. Reads the database, so it runs with ``check --database ALIAS`` (and
    before ``migrate``), as Django's own database checks do."""
    from django.tasks import task_backends

    from offload.backend import DatabaseBackend
    from offload.models import Schedule

    messages: list[checks.CheckMessage] = []
    for backend in task_backends.all():
        if not isinstance(backend, DatabaseBackend) or backend.config.problems:
            continue
        database = backend.config.database
        if not databases or database not in databases:
            continue
        try:
            rows = list(
                Schedule.objects.using(database)
                .filter(backend=backend.alias, enabled=True)
                .order_by("pk")[:STORED_CHECK_LIMIT]
            )
        except DatabaseError:
            continue  # not migrated yet: nothing stored to check
        for row in rows:
            reason = stored_problem(row)
            if reason:
                messages.append(
                    checks.Warning(
                        f"Schedule {row.name!r} cannot fire: {reason}.",
                        hint="Fix or pause it in the admin (or in code, for a schedule from code).",
                        obj=f"TASKS[{backend.alias!r}]",
                        id="offload.W004",
                    )
                )
    return messages
