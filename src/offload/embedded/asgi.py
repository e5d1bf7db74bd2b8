"""An ASGI wrapper that ties the embedded worker to the server's lifespan.

Django's ASGI handler refuses the ``lifespan`` scope, so an ASGI server that
stops on SIGTERM gives it no chance to stop the worker: uvicorn restores the
default SIGTERM action and raises the signal again once it has shut down, and
the process then dies without running its exit handlers (its tasks come back
only through the rescue, once their leases lapse). Wrapped, the server's
``lifespan.startup`` starts the worker in each server process and
``lifespan.shutdown`` stops it: running tasks get the shutdown timeout, then
go back with a record. Other scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from offload.embedded.startup import start, stop

logger = logging.getLogger("offload.embedded")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_embedded_worker(app: ASGIApp) -> ASGIApp:
    """``app``, with the embedded worker started and stopped by the server's lifespan."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await asyncio.to_thread(start)
                except Exception:
                    # The site still serves; the worker's failure is in the log.
                    logger.exception("The embedded worker could not start")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Blocking: the worker waits for its running tasks.
                await asyncio.to_thread(stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
