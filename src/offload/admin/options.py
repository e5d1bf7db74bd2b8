"""Which backend's OPTIONS and database the admin uses."""

from typing import Any

from django.db import router
from django.tasks import task_backends

from offload.backend import DatabaseBackend
from offload.conf import Options
from offload.models import TaskRecord


def backends() -> list[DatabaseBackend]:
    """Every offload backend, the ``default`` alias first."""
    found = [b for b in task_backends.all() if isinstance(b, DatabaseBackend)]
    return sorted(found, key=lambda backend: backend.alias != "default")


def admin_options() -> Options:
    """The OPTIONS of the first offload backend (defaults when there is none)."""
    found = backends()
    return found[0].config if found else Options()


def backend_named(alias: str | None) -> DatabaseBackend | None:
    """The offload backend ``alias``; None: the first one. None if there is no such one."""
    found = backends()
    if alias is None:
        return found[0] if found else None
    return next((b for b in found if b.alias == alias), None)


def backend_problem(alias: str) -> str | None:
    """What is wrong with ``?backend=alias`` on an admin page."""
    if backend_named(alias) is not None:
        return None
    known = ", ".join(b.alias for b in backends()) or "none"
    return f"No offload backend {alias!r} in TASKS (there are: {known})."


def database_of(alias: str | None) -> str:
    """The database of the offload backend ``alias``; None: the admin's own."""
    backend = backend_named(alias) if alias is not None else None
    if backend is None:
        return router.db_for_read(TaskRecord) or "default"
    return backend.config.database


def configured_queues() -> list[str]:
    """Queue names listed in the QUEUES of any offload backend."""
    names: set[str] = set()
    for backend in backends():
        names.update(name for name in backend.queues if isinstance(name, str))
    return sorted(names)


def backend_switch(alias: str | None) -> dict[str, Any]:
    """What a page says of the backend it shows, and the other backends to
    switch to (``backend_switch.html`` shows them only when there are several)."""
    backend = backend_named(alias)
    return {
        "backend": backend.alias if backend is not None else None,
        "database": database_of(backend.alias if backend is not None else None),
        "backends": [b.alias for b in backends()],
    }
