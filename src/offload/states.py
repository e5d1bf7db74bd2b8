"""The task state machine, written down once.

::

               enqueue with upstreams --->  WAITING
                                               | its last upstream ended
                                               v  (BLOCKED if it has a key)
                 enqueue  --- key at its limit --->  BLOCKED
                    |                                   |
                    v                                   | promoted: a task of
      +-------->  READY  <------------------------------+ its key ended
      |             |  (run_after / available_at holds it until due)
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
* SUCCESSFUL and FAILED are final, and so is CANCELLED.
* BLOCKED: a task with a concurrency key whose limit was reached when it was
  enqueued (see ``offload.concurrency``). It is in no queue, so no claim reads
  it; it becomes READY when a task of its key reaches a final state and
  promotes it, in that task's transaction (or at the rescuer's sweep). Or a
  task with a rate key whose window was full (``offload.rates``), or a
  retry of one: the rate promoter makes it READY when its window has room.
  Cancelling it cancels it. Django sees it as READY: it waits to run.
* WAITING: a task of a workflow whose upstream tasks have not all ended (see
  ``offload.workflows`` and ``store.dependencies``). It is in no queue. The
  final state of its last upstream makes it READY (or BLOCKED, if it has a
  concurrency or rate key), in that upstream's transaction; a failed upstream
  cancels it instead, unless it was enqueued to run whatever the upstreams
  did. Django sees it as READY.

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
    BLOCKED = "BLOCKED", "Blocked"
    WAITING = "WAITING", "Waiting"


FINISHED_STATES = frozenset({State.SUCCESSFUL, State.FAILED, State.CANCELLED})

_TO_DJANGO = {
    State.READY: TaskResultStatus.READY,
    State.RUNNING: TaskResultStatus.RUNNING,
    State.SUCCESSFUL: TaskResultStatus.SUCCESSFUL,
    State.FAILED: TaskResultStatus.FAILED,
    # Django has no cancelled status; a cancelled task did not succeed, and its
    # errors say why.
    State.CANCELLED: TaskResultStatus.FAILED,
    # Waiting on a concurrency limit is waiting to run.
    State.BLOCKED: TaskResultStatus.READY,
    # Waiting on upstream tasks is waiting to run too.
    State.WAITING: TaskResultStatus.READY,
}


def to_django_status(state: str) -> TaskResultStatus:
    """Map a stored state onto Django's ``TaskResultStatus``."""
    return _TO_DJANGO[State(state)]
