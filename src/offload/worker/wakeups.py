"""What wakes an idle worker: one ``select()`` over every source.

The sources: a pipe that the worker's own threads write to (an outcome, a freed
slot, a stop request), the supervisor's control pipe, and a way to hear of new
tasks: on PostgreSQL, LISTEN on the worker's connection (or, behind a pooler
in transaction mode, on a direct connection of its own: see ``listen_plan``);
elsewhere, this process's local wake-up socket (see ``store.wakeup``). An idle
worker costs almost nothing and wakes at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from offload.conf import Options
from offload.store import QueueFilter, TaskStore
from offload.store.announce import NOTIFY_CHANNEL
from offload.store.connection import open_private
from offload.store.wakeup import WakeSocket, wake_key

logger = logging.getLogger("offload.worker")


@dataclass(frozen=True)
class ListenPlan:
    """Where a PostgreSQL worker LISTENs: on its own connection (the default), on
    a direct connection to ``alias``, or nowhere (``enabled`` False: it polls)."""

    enabled: bool = True
    alias: str | None = None


def listen_plan(options: Options) -> ListenPlan:
    """A LISTEN through a pooler in transaction mode subscribes whichever server
    connection served it, and the notifications go to that connection's next
    client, if any: so behind one, only a direct alias (``LISTEN_DATABASE``)
    can listen, and without it the worker polls."""
    if options.listen_database is not None:
        return ListenPlan(alias=options.listen_database)
    return ListenPlan(enabled=not options.transaction_pooler)


class Wakeups:
    """The dispatcher's sleep, and everything that ends it."""

    def __init__(
        self,
        queues: QueueFilter,
        control_fd: int | None = None,
        on_control: Callable[[bytes], None] | None = None,
        *,
        listen: ListenPlan | None = None,
    ) -> None:
        self.queues = queues
        self._plan = listen or ListenPlan()
        self._direct: BaseDatabaseWrapper | None = None  # the plan's own connection
        self.notified = False  # a task of our queues was enqueued: look now
        # Whether the dispatcher sleeps (or is about to), and whether anything
        # changed since its loop last looked (see nudge).
        self._asleep = False
        self._nudged = False
        self._listening_on: object = None  # the DB-API connection we LISTEN on
        self._socket: WakeSocket | None = None  # engines without LISTEN
        self._socket_failed = False
        self._store: TaskStore | None = None
        self._control_fd = control_fd
        self._on_control = on_control
        self._pipe_r, self._pipe_w = os.pipe()
        os.set_blocking(self._pipe_r, False)
        os.set_blocking(self._pipe_w, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._pipe_r, selectors.EVENT_READ, "wake")
        if control_fd is not None:
            self._selector.register(control_fd, selectors.EVENT_READ, "control")

    @property
    def listening(self) -> bool:
        """Whether new tasks are heard of through LISTEN (so polling can be slow)."""
        return self._listening_on is not None

    @property
    def has_socket(self) -> bool:
        return self._socket is not None

    def nudge(self) -> None:
        """Tell the dispatcher something changed: an outcome, a free slot, a stop.

        Only a dispatcher that sleeps (or is about to) needs the pipe; a busy
        one sees the change when its loop looks again. The pipe write is a
        system call per outcome and per free slot, and a thread that makes one
        gives up the interpreter lock and must win it back. The flags are read
        and written under the lock, in opposite orders on the two sides (see
        ``wait``), so a change is never missed.
        """
        self._nudged = True
        if self._asleep:
            # A full pipe means a wake-up is pending anyway; a closed one, that run() ended.
            with contextlib.suppress(OSError):
                os.write(self._pipe_w, b"w")

    def new_round(self) -> None:
        """The dispatcher looks at everything now: what changes from here on wakes ``wait``."""
        self._nudged = False

    def take_notified(self) -> bool:
        """Whether a notification came since the last call."""
        notified, self.notified = self.notified, False
        return notified

    def wait(self, timeout: float | None) -> None:
        """Sleep until something happens or ``timeout`` seconds pass."""
        if self.notified:
            return
        self._asleep = True
        try:
            # A change since this round of the loop began may have skipped the
            # pipe (the dispatcher was not asleep yet): look again at once.
            self._select(0 if self._nudged else timeout)
        finally:
            self._asleep = False

    def _select(self, timeout: float | None) -> None:
        for key, _ in self._selector.select(timeout):
            if key.data == "wake":
                try:
                    while os.read(self._pipe_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            elif key.data == "control" and self._control_fd is not None:
                data = os.read(self._control_fd, 64)
                if not data:
                    # The supervisor is gone: its end will never say more.
                    self._selector.unregister(self._control_fd)
                if self._on_control is not None:
                    self._on_control(data)
            elif key.data == "listen":
                self._read_notifications()
            elif key.data == "local" and self._socket is not None:
                queues = self._socket.read()
                if queues is None or any(map(self.queues.allows, queues)):
                    self.notified = True

    # -- hearing of new tasks ------------------------------------------------------------

    def ensure_listening(self, store: TaskStore) -> None:
        """On PostgreSQL, LISTEN as the plan says (again after a reconnect);
        elsewhere, open this process's local wake-up socket (see ``store.wakeup``)."""
        self._store = store
        if store.connection.vendor != "postgresql":
            if self._socket is None and not self._socket_failed:
                self._open_socket(store)
            return
        connection = self._listen_connection(store)
        if connection is None:
            return
        connection.ensure_connection()
        raw = connection.connection
        if raw is None or raw is self._listening_on:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
        # Notifications that arrive while a query runs are handed to this
        # handler by psycopg; the ones that arrive while idle are read in wait().
        raw.add_notify_handler(lambda notify: self._on_notify(notify.payload))
        self._unregister_listen()
        self._selector.register(raw.fileno(), selectors.EVENT_READ, "listen")
        self._listening_on = raw

    def _listen_connection(self, store: TaskStore) -> BaseDatabaseWrapper | None:
        if not self._plan.enabled:
            return None
        if self._plan.alias is None:
            return store.connection
        if self._direct is None:
            # Opened in the dispatcher's thread, which alone uses it.
            self._direct = open_private(self._plan.alias, session=False)
        return self._direct

    def _open_socket(self, store: TaskStore) -> None:
        connection = store.connection
        try:
            self._socket = WakeSocket(wake_key(connection.settings_dict, connection.vendor))
        except OSError as exc:
            # Polling alone still finds every task, a little later.
            self._socket_failed = True
            logger.warning("No local wake-up socket (%s); polling only", exc)
            return
        self._selector.register(self._socket.fileno(), selectors.EVENT_READ, "local")

    def stop_listening(self) -> None:
        """Forget the LISTEN connection (it broke, or a database error may have
        broken it); a direct one is closed, to be opened afresh."""
        self._unregister_listen()
        self._listening_on = None
        self._close_direct()

    def _unregister_listen(self) -> None:
        # By the registered key, not raw.fileno(): a broken connection has none.
        for key in list(self._selector.get_map().values()):
            if key.data == "listen":
                self._selector.unregister(key.fileobj)

    def _close_direct(self) -> None:
        # A direct connection is only for LISTEN: once forgotten, it is closed,
        # and the next ensure_listening opens a fresh one.
        if self._direct is not None:
            with contextlib.suppress(DatabaseError):
                self._direct.close()
            self._direct = None

    def _on_notify(self, queue_name: str) -> None:
        if self.queues.allows(queue_name):
            self.notified = True

    def _read_notifications(self) -> None:
        raw: Any = self._listening_on
        if raw is None:
            return
        try:
            raw.pgconn.consume_input()
            while (notify := raw.pgconn.notifies()) is not None:
                self._on_notify(notify.extra.decode())
        except Exception:
            # The connection broke while idle: drop it; the next claim reconnects.
            logger.warning("Lost the LISTEN connection; reconnecting", exc_info=True)
            direct = self._direct is not None
            self.stop_listening()
            if self._store is not None and not direct:
                self._store.reset()
            self.notified = True

    def close_sources(self) -> None:
        """Drop the LISTEN connection and the local socket (the connection is closed)."""
        self._listening_on = None
        self._close_direct()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def close(self) -> None:
        self.close_sources()
        self._selector.close()
