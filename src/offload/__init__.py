"""Background tasks for Django's tasks framework, stored in the project's database."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__version__ = "0.1.0"


def enqueue_many(task: Any, calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]]) -> list[Any]:
    """Enqueue ``task`` once per ``(args, kwargs)`` in ``calls``, in a few multi-row INSERTs.

    ``task`` must use an offload backend (``task.using(backend=...)`` picks one).
    Returns one ``TaskResult`` per call, in order. See
    ``offload.backend.DatabaseBackend.enqueue_many``.
    """
    # Imported here: the package is imported while Django's apps are loading.
    from django.tasks.exceptions import InvalidTaskBackend

    from offload.backend import DatabaseBackend

    backend = task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        raise InvalidTaskBackend(
            f"enqueue_many needs an offload backend; task {task.module_path!r} uses "
            f"{type(backend).__module__}.{type(backend).__qualname__}."
        )
    return backend.enqueue_many(task, calls)
