"""The task state machine, written down once.

::

                 enqueue
                    |
                    v
      +-------->  READY  -- run_after / available_at holds it until due
      |             |
      | release     | claim (attempt += 1, lease taken)
      | or retry    v
      +-------  RUNNING
                 /     \\
       complete /       \\ fail
               v         v
        SUCCESSFUL     FAILED

* ``attempt`` counts claims. It is the fencing token: every write that ends or
  returns a claim says ``WHERE id = ? AND attempt = ?`` (and ``status = RUNNING``),
  so a worker that was presumed dead can never overwrite a newer attempt.
* ``release`` returns a RUNNING task to READY without counting it as a failure
  (graceful shutdown); a retry does the same with a later ``available_at``.
* SUCCESSFUL and FAILED are final.

Internal states may grow beyond Django's four (cancelled, blocked, ...);
:func:`to_django_status` is the one place that maps them.
"""

from django.db import models
from django.tasks import TaskResultStatus


class State(models.TextChoices):
    READY = "READY", "Ready"
    RUNNING = "RUNNING", "Running"
    SUCCESSFUL = "SUCCESSFUL", "Successful"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


FINISHED_STATES = frozenset({State.SUCCESSFUL, State.FAILED, State.CANCELLED})

_TO_DJANGO = {
    State.READY: TaskResultStatus.READY,
    State.RUNNING: TaskResultStatus.RUNNING,
    State.SUCCESSFUL: TaskResultStatus.SUCCESSFUL,
    State.FAILED: TaskResultStatus.FAILED,
    # Django has no cancelled status; a cancelled task did not succeed, and its
    # errors say why.
    State.CANCELLED: TaskResultStatus.FAILED,
}


def to_django_status(state: str) -> TaskResultStatus:
    """Map a stored state onto Django's ``TaskResultStatus``."""
    return _TO_DJANGO[State(state)]
