"""Views a project may route itself: ``offload.views.metrics`` for Prometheus.

Nothing here is routed by offload: the admin's pages live under
``admin.site.urls``; a metrics endpoint is a choice of the project's, made in
its ``urls.py``.
"""

from __future__ import annotations

import hmac
import logging

from django.http import HttpRequest, HttpResponse
from django.tasks import task_backends
from django.views.decorators.http import require_GET

from offload.backend import DatabaseBackend

logger = logging.getLogger("offload.metrics")

# A staff user needs this permission to read the metrics, as for the task list.
PERMISSION = "offload.view_taskrecord"


def _backends() -> list[DatabaseBackend]:
    return [b for b in task_backends.all() if isinstance(b, DatabaseBackend)]


def _token_matches(request: HttpRequest, tokens: set[str]) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    # Compared in constant time, against every backend's token.
    return any(hmac.compare_digest(given.encode(), token.encode()) for token in tokens)


def _allowed(request: HttpRequest, backends: list[DatabaseBackend]) -> bool:
    tokens = {b.config.metrics_token for b in backends if b.config.metrics_token}
    if tokens and _token_matches(request, tokens):
        return True
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff and user.has_perm(PERMISSION))


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics of every offload backend: for a staff user with the
    task list's view permission, or with ``Authorization: Bearer <token>``
    where a backend sets ``OPTIONS["METRICS_TOKEN"]``."""
    backends = _backends()
    if not _allowed(request, backends):
        logger.warning("Metrics refused to %s", request.META.get("REMOTE_ADDR", "?"))
        response = HttpResponse("Forbidden: a staff login or a bearer token is needed.\n",
                                status=403, content_type="text/plain")  # fmt: skip
        response["WWW-Authenticate"] = 'Bearer realm="offload metrics"'
        return response
    try:
        from offload.operations.metrics import exposition
    except ImportError:
        from offload.operations.metrics import INSTALL_HINT

        return HttpResponse(INSTALL_HINT + "\n", status=501, content_type="text/plain")
    body, content_type = exposition(backends)
    return HttpResponse(body, content_type=content_type)
