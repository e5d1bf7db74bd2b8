"""The one way to say that tasks are ready: wake the workers that may take them.

Whatever makes a task READY (an enqueue, a bulk enqueue, a schedule's fire,
which enqueues, and an operator's retry, run-again or queue resume) calls
:meth:`Announcer.announce` with the queues it touched, on the connection that wrote
them, before that write commits:

* On PostgreSQL it sends ``NOTIFY`` on ``NOTIFY_CHANNEL`` (payload: the queue
  name). Notifications are delivered at commit, so an idle worker on any host
  wakes exactly when the task becomes visible, and a rolled-back write wakes
  nobody. The single enqueue sends its NOTIFY from the INSERT itself (no
  extra round trip, see ``vendor.insert_and_notify``) and says so with
  ``notified=True``.
* Elsewhere (SQLite, MariaDB: no LISTEN/NOTIFY) it wakes this host's idle
  workers through their local sockets (see ``wakeup``) once the write
  commits, and never if it rolls back. Workers on other hosts find the task
  at their next poll.
"""

from collections.abc import Iterable
from functools import cached_property
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from offload.store.vendor import Vendor
from offload.store.wakeup import Waker, wake_key, waker_for

NOTIFY_CHANNEL = "offload_task"


class Announcer:
    """Announces ready work for one database (built once per store)."""

    def __init__(self, vendor: Vendor, settings_dict: dict[str, Any]) -> None:
        self.vendor = vendor
        self._settings_dict = settings_dict

    @cached_property
    def _waker(self) -> Waker:
        # Found once: an enqueue then costs a stat of the socket directory.
        return waker_for(wake_key(self._settings_dict, self.vendor.name))

    def announce(
        self, connection: BaseDatabaseWrapper, queues: Iterable[str], *, notified: bool = False
    ) -> None:
        """Wake the workers of ``queues`` once the current transaction commits.

        ``notified``: the statement that made the tasks READY already sent the
        NOTIFY (PostgreSQL), so nothing is left to do there.
        """
        notify = self.vendor.notify
        if notify is not None:
            if not notified:
                with connection.cursor() as cursor:
                    for queue in sorted(set(queues)):
                        cursor.execute(notify, [NOTIFY_CHANNEL, queue])
            return
        names = tuple(queues)
        if not names:
            return
        waker = self._waker
        # Runs at once outside a transaction; after the commit inside one, and
        # never if it rolls back.
        connection.on_commit(lambda: waker.wake(names))


def notify_params(queue: str) -> list[str]:
    """The parameters of the NOTIFY inside ``vendor.insert_and_notify``."""
    return [NOTIFY_CHANNEL, queue]
