"""What ``manage.py offload`` says when the database fails it: one message for
missing tables, whichever subcommand met them, and the error itself otherwise."""

from django.core.management.base import CommandError
from django.tasks import task_backends

from offload.tables import tables_problem


def database_of(alias: str) -> str | None:
    """The database alias holding the tables of the ``TASKS`` backend ``alias``."""
    try:
        backend = task_backends[alias]
    except Exception:  # an unknown or broken backend: said elsewhere
        return None
    config = getattr(backend, "config", None)
    return getattr(config, "database", None)


def command_error(exc: BaseException, backend_alias: str) -> CommandError:
    """A ``CommandError`` for ``exc``: the tables message if offload's tables on
    the backend's database are missing or behind, ``exc``'s own text otherwise."""
    database = database_of(backend_alias)
    problem = tables_problem(database) if database else None
    return CommandError(problem or str(exc))
