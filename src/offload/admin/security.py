"""What keeps the operator pages safe: secret masking, a strict Content-Security-Policy,
the permission check every view makes, and bounds on what a request may ask for.

Everything a task controls (its path, arguments, errors, queue name) is shown
through Django's auto-escaping or ``format_html``; nothing here marks text safe.
"""

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

MASK = "********"
# Keys whose values are not shown: a substring match, case insensitive, at any
# depth ("api_key", "refreshToken", "DB_PASSWORD" ...). Better to hide a
# harmless value now and then than to show a credential.
SECRET_KEY_PATTERN = re.compile(r"pass(word|wd)?|token|secret|key|credential|auth", re.IGNORECASE)

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


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced by a mask."""
    # Iterative, not recursive: a deeply nested payload must not raise RecursionError.
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, slot = stack.pop()
        if isinstance(item, dict):
            copy: dict[Any, Any] = {}
            parent[slot] = copy
            for key, sub in item.items():
                if isinstance(key, str) and SECRET_KEY_PATTERN.search(key):
                    copy[key] = MASK
                else:
                    copy[key] = None
                    stack.append((sub, copy, key))
        elif isinstance(item, list):
            items: list[Any] = [None] * len(item)
            parent[slot] = items
            stack.extend((sub, items, i) for i, sub in enumerate(item))
        else:
            parent[slot] = item
    return root[0]


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
        return with_csp(view(*args, **kwargs))

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
