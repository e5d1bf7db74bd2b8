"""Before ``migrate``: every subcommand and the admin say the same thing."""

import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from offload.tables import tables_message, tables_problem
from tests.admin_factory import make_user

MESSAGE = tables_message("default")


@pytest.fixture
def unmigrated() -> Iterator[None]:
    """The default database as a new project has it before ``migrate``: no
    offload tables. Migrated again afterwards."""
    call_command("migrate", "offload", "zero", verbosity=0)
    try:
        yield
    finally:
        call_command("migrate", verbosity=0)


def test_the_message_names_the_database_and_the_command():
    assert MESSAGE == (
        "offload's tables on database 'default' are missing or not up to date: "
        "run 'manage.py migrate'."
    )
    assert tables_message("queue").endswith("run 'manage.py migrate --database queue'.")
    assert tables_problem("default") is None  # migrated


@pytest.mark.parametrize(
    "argv",
    [
        ("enqueue", "tests.app.tasks.noop"),
        ("enqueue", "clearsessions"),
        ("schedules",),
        ("schedules", "--sync"),
        ("worker", "--burst", "--processes", "1"),
    ],
    ids=" ".join,
)
def test_every_subcommand_says_run_migrate(unmigrated, argv):
    with pytest.raises(CommandError) as caught:
        call_command("offload", *argv, stdout=io.StringIO(), stderr=io.StringIO())
    assert str(caught.value) == MESSAGE


@pytest.mark.parametrize(
    "url",
    [
        "admin:offload_dashboard_data",
        "admin:offload_taskrecord_changelist",
        "admin:offload_failedtask_changelist",
        "admin:offload_queue_changelist",
        "admin:offload_schedule_changelist",
        "admin:offload_workerrecord_changelist",
    ],
)
def test_the_admin_pages_say_run_migrate_rather_than_fail(unmigrated, url):
    client = Client(raise_request_exception=True)
    client.force_login(make_user("root", superuser=True))
    response = client.get(reverse(url))
    assert response.status_code == 503
    assert "run &#x27;manage.py migrate&#x27;" in response.text
    assert "offload&#x27;s tables on database &#x27;default&#x27;" in response.text
