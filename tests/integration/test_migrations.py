"""Migration hygiene: the models and the migrations agree."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db(transaction=True, databases=["default", "queue"])
def test_no_missing_migrations():
    out = StringIO()
    # --check exits non-zero (SystemExit) when a migration is missing.
    call_command("makemigrations", "offload", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_the_models_give_no_warning_on_this_engine():
    """Partial indexes are created by the migrations, not declared on the
    model: a declared one makes Django warn (models.W037) on every command
    of a MariaDB project."""
    from django.core import checks

    from offload.models import TaskRecord

    messages = [m for m in checks.run_checks(databases=["default"]) if m.obj is TaskRecord]
    assert messages == []


@pytest.mark.django_db(transaction=True)
def test_the_partial_index_migration_reverses_and_reapplies():
    from django.db import connection

    def indexes() -> set[str]:
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, "offload_task")
        return {name for name, info in found.items() if info["index"]}

    latest = "0009_running_lease_index"
    call_command("migrate", "offload", "0008", verbosity=0)
    assert "offload_task_lease_idx" in indexes()
    assert "offload_task_running_lease_idx" not in indexes()
    call_command("migrate", "offload", latest, verbosity=0)
    after = indexes()
    assert "offload_task_lease_idx" not in after
    partial = {"offload_task_running_lease_idx", "offload_task_async_claim_idx"}
    if connection.features.supports_partial_indexes:
        assert partial <= after
    else:
        assert not partial & after
    call_command("migrate", "offload", verbosity=0)  # back to the newest, for the tests after


@pytest.mark.django_db(transaction=True)
def test_the_schedule_error_migration_reverses_and_reapplies():
    from django.db import connection

    def columns() -> set[str]:
        with connection.cursor() as cursor:
            found = connection.introspection.get_table_description(cursor, "offload_schedule")
        return {column.name for column in found}

    call_command("migrate", "offload", "0009", verbosity=0)
    assert not {"last_error", "last_error_at"} & columns()
    call_command("migrate", "offload", verbosity=0)
    assert {"last_error", "last_error_at"} <= columns()


@pytest.mark.django_db(transaction=True)
def test_the_autovacuum_migration_sets_and_resets_the_task_table_storage():
    from django.db import connection

    def storage() -> set[str]:
        if connection.vendor != "postgresql":
            return set()
        with connection.cursor() as cursor:
            cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'offload_task'")
            return set(cursor.fetchone()[0] or [])

    tuned = {"autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_threshold=1000"}
    if connection.vendor == "postgresql":
        assert tuned <= storage()
    call_command("migrate", "offload", "0010", verbosity=0)
    assert storage() == set()
    call_command("migrate", "offload", verbosity=0)
    if connection.vendor == "postgresql":
        assert tuned <= storage()
        assert "autovacuum_analyze_scale_factor=0.01" in storage()


@pytest.mark.django_db(transaction=True)
def test_the_unique_key_migration_reverses_and_reapplies():
    from django.db import connection

    def unique_index() -> dict | None:
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, "offload_task")
        return found.get("offload_task_unique_key_uniq")

    call_command("migrate", "offload", "0013", verbosity=0)
    assert unique_index() is None
    call_command("migrate", "offload", verbosity=0)
    index = unique_index()
    assert index is not None
    assert index["unique"]
    assert index["columns"] == ["backend", "unique_key"]
