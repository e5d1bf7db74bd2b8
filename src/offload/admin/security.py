"""What keeps the operator pages safe: a strict Content-Security-Policy (on their
error pages too), the permission check every view makes, and bounds on what a
request may ask for. Masking is in ``masking``.

Everything a task controls (its path, arguments, errors, queue name) is shown
through Django's auto-escaping or ``format_html``; nothing here marks text safe.
"""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.core.handlers.exception import response_for_exception
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern

from offload.admin.masking import MASK, mask_secrets

__all__ = [
    "MASK",
    "bounded_int",
    "csp_urls",
    "csp_view",
    "mask_secrets",
    "require_perm",
    "with_csp",
]

# No inline script or event handler runs on our pages: scripts come only from
# this site's static files. Django's admin templates need nothing more.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


def with_csp(response: HttpResponse) -> HttpResponse:
    """Set the Content-Security-Policy (and friends) on one of our responses."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def csp_view[**P](view: Callable[P, HttpResponse]) -> Callable[P, HttpResponse]:
    """Decorate a view (function or ModelAdmin method) so its response carries the CSP."""

    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        try:
            return with_csp(view(*args, **kwargs))
        except (PermissionDenied, SuspiciousOperation, Http404) as exc:
            # Django's own 403, 400 and 404 pages, with our headers too.
            request = next(a for a in (*args, *kwargs.values()) if isinstance(a, HttpRequest))
            return with_csp(response_for_exception(request, exc))

    return wrapped


def require_perm(request: HttpRequest, codename: str) -> None:
    """Refuse (403) a user who is not active staff with ``offload.<codename>``."""
    user = request.user
    if not (user.is_active and user.is_staff and user.has_perm(f"offload.{codename}")):
        raise PermissionDenied


def bounded_int(raw: str | None, default: int, low: int, high: int) -> int:
    """Parse a request parameter as an int within [low, high]; junk gives the default."""
    if raw is None or len(raw) > 12:
        return default
    try:
        value = int(raw)
    except ValueError:
        return default
    return max(low, min(high, value))


def csp_urls(patterns: list[URLPattern]) -> list[URLPattern]:
    """Give every view of ``patterns`` the CSP, the pages Django adds included
    (history, autocomplete, the redirect to the login)."""
    for pattern in patterns:
        pattern.callback = csp_view(pattern.callback)
    return patterns
