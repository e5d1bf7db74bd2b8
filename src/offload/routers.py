"""Keep offload's tables on the database named by ``OPTIONS["DATABASE"]``.

Needed only when that is not ``"default"``::

    DATABASE_ROUTERS = ["offload.routers.OffloadRouter"]

Reads and writes go to the database of the ``default`` TASKS backend (what the
admin shows unless asked for another backend), except for a row read from a
database, which stays on it (as with Django's default routing): saving it,
deleting it and checking its constraints use that database. Migrations create
the tables on every database that some offload backend names. Settings are read
on each call, never at import.
"""

from typing import Any

from django.conf import settings
from django.db.models import Model

APP_LABEL = "offload"
BACKEND_PATH = "offload.backend.DatabaseBackend"


def _task_databases() -> list[str]:
    tasks_setting: dict[str, dict[str, Any]] = getattr(settings, "TASKS", {})
    default_first = sorted(tasks_setting.items(), key=lambda item: item[0] != "default")
    found: list[str] = []
    for _alias, params in default_first:
        if params.get("BACKEND") == BACKEND_PATH:
            database = params.get("OPTIONS", {}).get("DATABASE", "default")
            if database not in found:
                found.append(database)
    return found


class OffloadRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        if model._meta.app_label != APP_LABEL:
            return None
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            return str(instance._state.db)
        databases = _task_databases()
        return databases[0] if databases else None

    db_for_write = db_for_read

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if app_label != APP_LABEL:
            return None
        return db in _task_databases()
