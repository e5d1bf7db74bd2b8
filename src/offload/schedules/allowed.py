"""What a schedule made in the admin may run: the allow-lists of the backend's OPTIONS.

Schedules declared in code (settings and ``@schedule``) are trusted: whoever
deploys the code decides. A schedule made in the admin runs only a command
listed in ``OPTIONS["SCHEDULE_ADMIN_COMMANDS"]`` or a task whose path, or one
of whose enclosing modules, is listed in ``OPTIONS["SCHEDULE_ADMIN_TASKS"]``.
Both lists are empty by default: the admin runs nothing settings did not allow.

Paths are matched as text, before anything is imported: a path that is not
allowed is never imported in the web process or the scheduler.
"""

from __future__ import annotations

from django.tasks import task_backends
from django.tasks.exceptions import InvalidTaskBackend

from offload.conf import Options


def options_of(alias: str) -> Options | None:
    """The OPTIONS of the offload backend ``alias``; None if there is no such backend."""
    from offload.backend import DatabaseBackend

    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        return None
    return backend.config if isinstance(backend, DatabaseBackend) else None


def command_allowed(options: Options | None, name: object) -> bool:
    return options is not None and isinstance(name, str) and name in options.schedule_admin_commands


def task_allowed(options: Options | None, path: object) -> bool:
    """True if ``path`` or a module it sits in is listed ("myapp.tasks" allows
    "myapp.tasks.send"; "myapp.tasks.send" allows only itself)."""
    if options is None or not isinstance(path, str):
        return False
    return any(
        path == allowed or path.startswith(allowed + ".")
        for allowed in options.schedule_admin_tasks
    )


def refusal(what: str, name: str, alias: str) -> str:
    """Why a schedule made in the admin may not run ``name`` (a command or a task)."""
    option = "SCHEDULE_ADMIN_COMMANDS" if what == "command" else "SCHEDULE_ADMIN_TASKS"
    return (
        f"{what} {name!r} is not allowed for schedules made in the admin: "
        f"add it to OPTIONS[{option!r}] of backend {alias!r}"
    )
