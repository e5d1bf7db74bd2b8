"""``manage.py check``: schedules that cannot fire are errors naming the schedule.

Malformed entries of ``OPTIONS["SCHEDULES"]`` are already reported with the
backend's other settings (``offload.E002``). This check adds what needs the
project loaded: ``@schedule`` declarations, task paths that do not import,
unknown commands, queues the backend does not allow, arguments that are not
plain JSON (``offload.E004``).
"""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from offload.commands import command_exists
from offload.exceptions import InvalidArguments, PayloadTooLarge, TaskNotImportable
from offload.payload import encode_arguments
from offload.results import resolve_task
from offload.schedules.spec import ScheduleSpec


def spec_problem(spec: ScheduleSpec, queues: set[str], max_payload_bytes: int) -> str | None:
    """Why ``spec`` cannot fire, or None."""
    if spec.command:
        if not command_exists(spec.command):
            return f"command {spec.command!r} is not a management command of this project"
    else:
        try:
            resolve_task(spec.task_path)
        except TaskNotImportable as exc:
            return str(exc).rstrip(".")
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
            reason = spec_problem(spec, backend.queues, backend.config.max_payload_bytes)
            if reason:
                messages.append(
                    checks.Error(
                        f"Schedule {name!r}: {reason}.",
                        obj=f"TASKS[{backend.alias!r}]",
                        id="offload.E004",
                    )
                )
    return messages
