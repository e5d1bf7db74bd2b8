"""Which backend's OPTIONS and database the admin uses."""

from django.db import router
from django.tasks import task_backends

from offload.backend import DatabaseBackend
from offload.conf import Options
from offload.models import TaskRecord
from offload.store import TaskStore


def backends() -> list[DatabaseBackend]:
    """Every offload backend, the ``default`` alias first."""
    found = [b for b in task_backends.all() if isinstance(b, DatabaseBackend)]
    return sorted(found, key=lambda backend: backend.alias != "default")


def admin_options() -> Options:
    """The OPTIONS of the first offload backend (defaults when there is none)."""
    found = backends()
    return found[0].config if found else Options()


def admin_store() -> TaskStore:
    """The store on the database the admin reads tasks from (see ``offload.routers``)."""
    return TaskStore(router.db_for_write(TaskRecord) or "default")


def configured_queues() -> list[str]:
    """Queue names listed in the QUEUES of any offload backend."""
    names: set[str] = set()
    for backend in backends():
        names.update(name for name in backend.queues if isinstance(name, str))
    return sorted(names)
