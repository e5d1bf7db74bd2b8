"""A worker inside the web process, for sites too small for ``offload worker``
(docs/embedded.md). ``start()`` is for a server's own hooks; otherwise the
first request of each web process starts it."""

from offload.embedded.startup import start

__all__ = ["start"]
