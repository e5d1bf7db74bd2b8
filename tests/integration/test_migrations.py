"""Migration hygiene: the models and the migrations agree."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone


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


# The task table's indexes the initial migration builds on every engine, and
# those it builds only where partial indexes exist.
TASK_INDEXES = {
    "offload_task_claim_idx",
    "offload_task_claim_all_idx",
    "offload_task_finished_idx",
    "offload_task_enqueued_idx",
    "offload_task_queue_idx",
    "offload_task_path_idx",
    "offload_task_unique_key_uniq",
    "offload_task_blocked_idx",
    "offload_task_rate_blocked_idx",
    "offload_task_workflow_idx",
}
PARTIAL_ONLY = {
    "offload_task_async_claim_idx",
    "offload_task_running_lease_idx",
    "offload_task_key_holders_idx",
    "offload_task_rate_window_idx",
    "offload_task_waiting_idx",
}
# Partial where the engine allows: name -> the condition's test.
CONDITIONS = {
    "offload_task_async_claim_idx": "READY",
    "offload_task_running_lease_idx": "RUNNING",
    "offload_task_key_holders_idx": "concurrency_key IS NOT NULL",
    "offload_task_rate_window_idx": "rate_key IS NOT NULL",
    "offload_task_unique_key_uniq": "unique_key IS NOT NULL",
    "offload_task_blocked_idx": "BLOCKED",
    "offload_task_rate_blocked_idx": "BLOCKED",
    "offload_task_workflow_idx": "workflow_id IS NOT NULL",
    "offload_task_waiting_idx": "WAITING",
}


def task_indexes() -> dict[str, dict]:
    from django.db import connection

    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "offload_task")
    return {name: info for name, info in found.items() if info["index"] and not info["primary_key"]}


def index_definitions() -> dict[str, str]:
    """The task table's indexes as the engine shows them, where it keeps their
    conditions (PostgreSQL, SQLite)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'offload_task'"
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = 'offload_task'"
            )
        return {name: sql or "" for name, sql in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_the_initial_migration_builds_the_task_indexes_partial_where_it_can():
    from django.db import connection

    found = task_indexes()
    if connection.features.supports_partial_indexes:
        assert set(found) == TASK_INDEXES | PARTIAL_ONLY
        definitions = index_definitions()
        for name, condition in CONDITIONS.items():
            assert " WHERE " in definitions[name], name
            assert condition in definitions[name], name
        assert " WHERE " not in definitions["offload_task_claim_idx"]
    else:
        assert set(found) == TASK_INDEXES
    unique = found["offload_task_unique_key_uniq"]
    assert unique["unique"]
    assert unique["columns"] == ["backend", "unique_key"]


@pytest.mark.django_db(transaction=True)
def test_the_initial_migration_sets_the_task_table_autovacuum_on_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("storage parameters are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'offload_task'")
        storage = set(cursor.fetchone()[0] or [])
    assert {
        "autovacuum_vacuum_scale_factor=0.01",
        "autovacuum_vacuum_threshold=1000",
        "autovacuum_analyze_scale_factor=0.01",
        "autovacuum_vacuum_cost_limit=1000",
    } <= storage


@pytest.mark.django_db(transaction=True)
def test_the_initial_migration_unapplies_to_nothing_and_reapplies():
    from django.apps import apps
    from django.db import connection

    ours = {model._meta.db_table for model in apps.get_app_config("offload").get_models()}

    def tables() -> set[str]:
        with connection.cursor() as cursor:
            return ours & set(connection.introspection.table_names(cursor))

    everything, indexes = tables(), set(task_indexes())
    assert everything == ours
    call_command("migrate", "offload", "zero", verbosity=0)
    try:
        assert tables() == set()
    finally:
        call_command("migrate", verbosity=0)
    assert tables() == everything
    assert set(task_indexes()) == indexes


@pytest.mark.django_db(transaction=True)
def test_the_online_index_operations_build_and_drop_each_way():
    """Every operation of offload.online_indexes, forwards and backwards, through
    a migration of the tests' own (the schema's indexes are built on empty
    tables, by plain statements); each statement is the engine's online one."""
    from django.db import connection

    from offload.models import TaskRecord
    from tests import online_index_migration as online

    TaskRecord.objects.bulk_create(
        TaskRecord(
            task_path="tests.app.tasks.noop",
            backend="default",
            status=status,
            available_at=timezone.now(),
            enqueued_at=timezone.now(),
        )
        for status in ["READY", "RUNNING", "SUCCESSFUL"] * 10
    )
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    before = set(task_indexes())
    with connection.execute_wrapper(record):
        online.run(backwards=False)
    try:
        after = set(task_indexes())
        assert after == before | {online.PARTIAL_INDEX}
        if connection.features.supports_partial_indexes:
            assert " WHERE " in index_definitions()[online.PARTIAL_INDEX]
    finally:
        with connection.execute_wrapper(record):
            online.run(backwards=True)
    assert set(task_indexes()) == before
    changes = [sql for sql in statements if sql.split()[0].upper() in {"CREATE", "DROP", "ALTER"}]
    # Forwards: build, build, drop; backwards: build, drop, drop.
    assert len(changes) == 6, changes
    online_words = {"postgresql": "CONCURRENTLY", "mysql": "LOCK=NONE"}.get(connection.vendor)
    if online_words:
        assert all(online_words in sql for sql in changes), changes


@pytest.mark.django_db(transaction=True)
def test_an_online_index_change_refuses_a_transaction_on_postgresql():
    from django.db import NotSupportedError, connection, transaction

    from offload.online_indexes import create_index_sql

    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL builds CONCURRENTLY")
    with (
        pytest.raises(NotSupportedError, match="atomic = False"),
        transaction.atomic(),
        connection.schema_editor() as editor,
    ):
        create_index_sql(editor, "offload_test_idx", "offload_task", "finished_at")
