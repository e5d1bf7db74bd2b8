"""The demo's tasks: one of each kind that offload runs today.

Tasks are ordinary functions decorated with Django's own ``@task``; nothing here
imports offload. The backend in ``settings.TASKS`` decides where they are stored.
"""

import asyncio

from django.tasks import task
from django.tasks.base import TaskContext


@task
def add(a: int, b: int) -> int:
    """A plain synchronous task on the default queue."""
    return a + b


@task(queue_name="emails")
def send_welcome_email(address: str) -> str:
    """A task on the "emails" queue; ``offload worker --queues emails`` runs only these."""
    return f"welcome email sent to {address}"


@task(priority=50)
def charge_card(order_id: int, cents: int) -> dict[str, object]:
    """A high-priority task: among due tasks, higher priority is claimed first."""
    return {"order": order_id, "charged": cents}


@task
def send_reminder(user: str) -> str:
    """Enqueued with ``.using(run_after=...)``: it is not claimed before then."""
    return f"reminded {user}"


@task
async def make_thumbnail(name: str, width: int) -> str:
    """An ``async def`` task: the worker runs it on an event loop."""
    await asyncio.sleep(0.01)  # stands in for awaiting real I/O
    return f"{name} -> {width}px thumbnail"


@task(takes_context=True)
def which_attempt(context: TaskContext, label: str) -> int:
    """A task that receives its context; returns the attempt number (1 on the first run)."""
    return context.attempt


@task
def import_contacts(filename: str) -> int:
    """A task that raises: it ends FAILED, with the traceback stored in its errors."""
    raise ValueError(f"{filename}: row 3 has no email address")
