"""Task, worker and user rows for the admin's tests, written through the ORM so
they do not depend on the enqueue path."""

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.utils import timezone

from offload.models import TaskRecord, WorkerRecord
from offload.states import State


def make_task(using: str | None = None, **fields: Any) -> TaskRecord:
    """A task row on database ``using`` (None: the router's)."""
    now = timezone.now()
    values: dict[str, Any] = {
        "task_path": "tests.app.tasks.add",
        "backend": "default",
        "queue_name": "default",
        "status": State.READY,
        "available_at": now - timedelta(seconds=1),
        "enqueued_at": now - timedelta(seconds=1),
        "args": [1, 2],
        "kwargs": {},
    }
    values.update(fields)
    return TaskRecord.objects.db_manager(using).create(**values)


def make_failed(using: str | None = None, **fields: Any) -> TaskRecord:
    now = timezone.now()
    values: dict[str, Any] = {
        "status": State.FAILED,
        "attempt": 3,
        "max_attempts": 3,
        "started_at": now - timedelta(seconds=5),
        "last_attempted_at": now - timedelta(seconds=2),
        "finished_at": now - timedelta(seconds=1),
        "worker_ids": ["host:1:w", "host:1:w", "host:2:w"],
        "errors": [
            {
                "exception_class_path": "builtins.ValueError",
                "traceback": f"Traceback (most recent call last):\nValueError: boom {n}\n",
                "attempt": n,
                "worker_id": "host:1:w",
                "at": now.isoformat(),
            }
            for n in (1, 2, 3)
        ],
    }
    values.update(fields)
    return make_task(using, **values)


def make_worker(
    worker_id: str = "host:100:abc", using: str | None = None, **fields: Any
) -> WorkerRecord:
    now = timezone.now()
    values: dict[str, Any] = {
        "id": worker_id,
        "name": "worker-1",
        "hostname": "host",
        "pid": 100,
        "supervisor_pid": 99,
        "backend": "default",
        "queues": "default,emails",
        "threads": 4,
        "started_at": now - timedelta(minutes=5),
        "heartbeat_at": now,
    }
    values.update(fields)
    return WorkerRecord.objects.db_manager(using).create(**values)


def make_user(
    name: str, *, staff: bool = True, perms: tuple[str, ...] = (), superuser: bool = False
) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=staff, is_superuser=superuser)
    for codename in perms:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="offload", codename=codename)
        )
    return user


def confirm(client: Any, url: str, page: Any) -> Any:
    """Press "Yes" on an admin action's confirmation page: post back its hidden fields."""
    assert page.status_code == 200, page.status_code
    fields: dict[str, list[str]] = {}
    for name, value in page.context["hidden"]:
        fields.setdefault(name, []).append(str(value))
    return client.post(url, fields)
