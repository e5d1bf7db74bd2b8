"""Every exception offload raises, in one place.

Each one also derives from the Django or built-in exception that a caller of
``django.tasks`` would already catch, so adopting offload never requires new
``except`` clauses.
"""

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend


class OffloadError(Exception):
    """Base class for offload's own errors."""


class InvalidArguments(OffloadError, InvalidTask, TypeError):
    """Task arguments are not plain JSON.

    Django's own backends raise ``TypeError("Unsupported type ...")`` for such
    arguments, so this is both an ``InvalidTask`` and a ``TypeError``.
    """


class ArgumentsTooDeep(InvalidArguments, ValueError):
    """Task arguments nest lists and dicts deeper than ``OPTIONS["MAX_ARGUMENT_DEPTH"]``."""


class UnstorableArguments(InvalidArguments, ValueError):
    """Task arguments are JSON types holding a value no supported database stores
    as it is: a NUL character, a lone surrogate, or an integer too long to write."""


class ArgumentsMismatch(OffloadError, InvalidTask, TypeError):
    """Task arguments do not fit the task function's signature (too many, a
    missing one, an unknown keyword), or a management command's options do not
    fit its parser. Refused at enqueue rather than failing when the task runs;
    a ``TypeError`` too, as calling the function with them would raise."""


class PayloadTooLarge(OffloadError, InvalidTask, ValueError):
    """The encoded arguments are larger than ``OPTIONS["MAX_PAYLOAD_BYTES"]``."""


class BackendMisconfigured(OffloadError, InvalidTaskBackend):
    """The backend's settings are invalid; ``manage.py check`` lists every problem."""


class TaskNotImportable(OffloadError, InvalidTask):
    """A stored task path no longer resolves to a ``django.tasks.Task``."""


class UnsupportedDatabase(OffloadError, ImproperlyConfigured):
    """The tasks tables live on a database engine offload does not support."""


class TasksDbNotInstalled(OffloadError, ImproperlyConfigured):
    """Tasks are to be moved from django-tasks-db, whose app is not installed."""


class TaskCancelled(OffloadError):
    """Recorded in the errors of a task that was cancelled before or while it ran."""


class InvalidTaskOptions(OffloadError, InvalidTask, ValueError):
    """A task's retry or timeout options are invalid."""


class TaskTimedOut(OffloadError):
    """Recorded in the errors of an attempt that ran past its timeout and was killed."""


class WorkerCrashed(OffloadError):
    """Recorded in the errors of an attempt whose process died while running it."""


class WorkerLost(OffloadError):
    """Recorded in the errors of an attempt whose worker stopped renewing its lease."""


class AttemptGivenBack(OffloadError):
    """Recorded in the errors of an attempt given back unfinished after its code
    started (its worker stopped, or its process was killed for another task):
    the task runs again."""


class OutcomeLost(OffloadError):
    """Recorded in the errors of an attempt whose code finished but whose outcome
    died with its process before it was written: the task runs again."""


class CorruptTask(OffloadError):
    """Recorded in the errors of a row whose stored arguments cannot be read."""


class CommandFailed(OffloadError):
    """A management command run as a task raised ``CommandError`` or exited non-zero.

    The message holds its exit status and everything it wrote, so the task's
    stored error keeps the output.
    """


class InvalidProgress(OffloadError, ValueError):
    """A running task reported progress that makes no sense (a negative number,
    ``current`` above ``total``, or something that is not a number)."""


class ScheduleNotAllowed(OffloadError, PermissionError):
    """A schedule made in the admin names a command or task that the backend's
    ``OPTIONS["SCHEDULE_ADMIN_COMMANDS"]`` / ``["SCHEDULE_ADMIN_TASKS"]`` do not list."""


class DrainLimitReached(OffloadError):
    """``offload.testing``'s ``run()`` made its most attempts without being
    given a ``limit`` and tasks were still due (a task that enqueues itself)."""


class MetricsUnavailable(OffloadError):
    """The worker's metrics port cannot be served: the ``metrics`` extra is not
    installed, or the port cannot be listened on."""


class DuplicateTask(OffloadError, IntegrityError):
    """A task with ``on_duplicate="raise"`` was enqueued while another task of
    its backend held its unique key. Nothing was enqueued; the caller's
    transaction is intact (the refused INSERT ran in a savepoint).

    An ``IntegrityError``, as the database's unique index is what refused it.
    ``existing_id`` is the id of the task that holds the key (its result:
    ``backend.get_result(existing_id)``), ``key`` the key.
    """

    def __init__(self, key: str, existing_id: str) -> None:
        super().__init__(f"Task {existing_id} already holds unique key {key!r}.")
        self.key = key
        self.existing_id = existing_id


class UpstreamFailed(OffloadError):
    """Recorded in the errors of a workflow task that was not run because a
    task it waited for did not succeed."""
