"""Moving waiting tasks from django-tasks-db's table into offload's, on every database."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from offload.exceptions import TasksDbNotInstalled
from offload.from_tasks_db import migration_operation, move_waiting_tasks
from offload.models import TaskRecord
from offload.states import State
from tests.app import tasks

pytestmark = pytest.mark.django_db(transaction=True)

NEVER = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)  # django-tasks-db's "no run_after"


@pytest.fixture
def old_table(settings: Any) -> Any:
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_tasks_db"]
    from django.apps import apps

    model = apps.get_model("django_tasks_database", "DBTaskResult")
    with connection.schema_editor() as editor:
        editor.create_model(model)
    yield model
    with connection.schema_editor() as editor:
        editor.delete_model(model)
    # Installing the app registered its ModelAdmin on the shared admin site;
    # left there, every admin page of later tests would look up an app that is
    # gone again.
    from django.contrib import admin

    admin.site._registry.pop(model, None)


def old_row(model: Any, path: str, *args: Any, **fields: Any) -> str:
    row = model.objects.create(
        task_path=path,
        args_kwargs={"args": list(args), "kwargs": fields.pop("kwargs", {})},
        backend_name="default",
        run_after=fields.pop("run_after", NEVER),
        exception_class_path="",
        traceback="",
        **fields,
    )
    return str(row.pk)


def test_waiting_tasks_move_with_their_arguments_queue_priority_and_start(old_table: Any) -> None:
    later = timezone.now() + timedelta(hours=1)
    plain = old_row(old_table, "tests.app.tasks.add", 2, 3)
    keyed = old_row(old_table, "tests.app.tasks.echo", kwargs={"to": "ada"}, priority=7,
                    queue_name="reports", run_after=later)  # fmt: skip

    report = move_waiting_tasks(batch_size=1)

    assert set(report.moved) == {plain, keyed}
    assert report.left == {}
    assert not old_table.objects.exists()
    first = TaskRecord.objects.get(pk=report.moved[plain])
    assert (first.task_path, first.args, first.status) == (
        "tests.app.tasks.add",
        [2, 3],
        State.READY,
    )
    assert first.run_after is None
    second = TaskRecord.objects.get(pk=report.moved[keyed])
    assert (second.kwargs, second.priority, second.queue_name) == ({"to": "ada"}, 7, "reports")
    assert second.run_after == later
    # It runs as any offload task does.
    assert tasks.add.get_result(report.moved[plain]).status == "READY"


def test_what_cannot_move_stays_in_the_old_table_with_its_reason(old_table: Any) -> None:
    gone = old_row(old_table, "tests.app.tasks.no_such_task")
    not_task = old_row(old_table, "tests.app.tasks.not_a_task")
    bad_args = old_row(old_table, "tests.app.tasks.add", 1, 2, 3)
    bad_queue = old_row(old_table, "tests.app.tasks.noop", queue_name="nobody-serves-this")
    running = old_row(old_table, "tests.app.tasks.noop", status="RUNNING")
    good = old_row(old_table, "tests.app.tasks.noop")

    report = move_waiting_tasks()

    assert set(report.moved) == {good}
    assert set(report.left) == {gone, not_task, bad_args, bad_queue}
    assert "does not import" in report.left[gone]
    assert "is not a django.tasks Task" in report.left[not_task]
    assert "ArgumentsMismatch" in report.left[bad_args]
    assert "nobody-serves-this" in report.left[bad_queue]
    assert report.running == 1
    left = {str(pk) for pk in old_table.objects.values_list("pk", flat=True)}
    assert left == {gone, not_task, bad_args, bad_queue, running}
    assert TaskRecord.objects.count() == 1


def test_a_failing_batch_moves_nothing_of_it(old_table: Any) -> None:
    ids = [old_row(old_table, "tests.app.tasks.add", n, n) for n in range(3)]

    def move_then_fail() -> None:
        with transaction.atomic():
            move_waiting_tasks()
            raise RuntimeError("the caller's transaction rolls back")

    with pytest.raises(RuntimeError):
        move_then_fail()
    assert {str(pk) for pk in old_table.objects.values_list("pk", flat=True)} == set(ids)
    assert not TaskRecord.objects.exists()


def test_progress_is_reported_after_each_batch(old_table: Any) -> None:
    for n in range(5):
        old_row(old_table, "tests.app.tasks.add", n, n)
    seen: list[tuple[int, int]] = []
    move_waiting_tasks(batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 5), (4, 5), (5, 5)]


def test_without_django_tasks_db_it_says_what_is_missing() -> None:
    with pytest.raises(TasksDbNotInstalled, match="not installed"):
        move_waiting_tasks()


def test_bad_arguments_are_refused_before_anything_moves(old_table: Any) -> None:
    old_row(old_table, "tests.app.tasks.noop")
    with pytest.raises(ValueError, match="batch_size"):
        move_waiting_tasks(batch_size=0)
    with pytest.raises(Exception, match="stores its tasks on database 'queue'"):
        move_waiting_tasks(backend="separate")
    assert old_table.objects.count() == 1


def test_the_migration_operation_works_on_historical_models(old_table: Any) -> None:
    # What migrate hands a RunPython: a registry of historical models, which
    # have the fields but none of the model's own code.
    from django.apps import apps
    from django.db.migrations.state import ProjectState

    moved = old_row(old_table, "tests.app.tasks.noop")
    historical = ProjectState.from_apps(apps).apps
    with connection.schema_editor() as editor:
        migration_operation(batch_size=10).code(historical, editor)
    assert not old_table.objects.filter(pk=moved).exists()
    assert TaskRecord.objects.filter(task_path="tests.app.tasks.noop").count() == 1


def test_the_guide_s_data_migration_runs_as_written(old_table: Any) -> None:
    # The sample of docs/migrating.md, executed: its dependencies exist and its
    # operation moves the tasks.
    from django.apps import apps
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.state import ProjectState

    guide = (Path(__file__).resolve().parents[2] / "docs" / "migrating.md").read_text()
    sample = next(b for b in re.findall(r"```python\n(.*?)```", guide, re.DOTALL) if "0042" in b)
    namespace: dict[str, Any] = {}
    exec(compile(sample, "docs/migrating.md", "exec"), namespace)
    migration = namespace["Migration"]

    graph = MigrationLoader(connection, ignore_no_migrations=True).graph
    for dependency in migration.dependencies:
        assert dependency in graph.nodes, f"the guide depends on {dependency}, which does not exist"
    moved = old_row(old_table, "tests.app.tasks.noop")
    with connection.schema_editor() as editor:
        migration.operations[0].code(ProjectState.from_apps(apps).apps, editor)
    assert not old_table.objects.filter(pk=moved).exists()
