"""Tasks for the test kit's own tests (tests/integration/test_testing_kit*.py)."""

from django.contrib.auth.models import User
from django.tasks import task
from django.tasks.base import TaskContext

from offload.task import task as offload_task


@task
def count_users() -> int:
    """Reads a table the test wrote to: the count proves which transaction the task saw."""
    return User.objects.count()


@task
def chain(steps: int) -> int:
    """Enqueue ``chain(steps - 1)`` until 0: a task that enqueues another."""
    if steps > 0:
        chain.enqueue(steps - 1)
    return steps


@task
def forever() -> None:
    """Enqueues itself each time it runs."""
    forever.enqueue()


@offload_task(
    max_attempts=3, retry_on=(ConnectionError,), backoff="fixed", retry_delay=60,
    takes_context=True,
)  # fmt: skip
def flaky_minute(context: TaskContext, fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts; each retry is due a minute later."""
    if context.attempt <= fail_times:
        raise ConnectionError(f"attempt {context.attempt} fails on purpose")
    return context.attempt


@task
async def async_double(value: int) -> int:
    """An ``async def`` task that reads the database."""
    return value * 2 + await User.objects.acount()


@task(queue_name="emails")
def welcome(address: str) -> str:
    return f"welcome {address}"


DAILY = {
    "nightly": {"task": "tests.app.kit_tasks.count_users", "cron": "0 3 * * *"},
}
