"""The test kit inside Django's TestCase and TransactionTestCase, through
OffloadTestMixin (the same scenarios as test_testing_kit_pytest.py)."""

import copy
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings

from offload.store.connection import open_private
from offload.testing import OffloadTestMixin
from tests.app import kit_tasks
from tests.app.tasks import add
from tests.integration import kit_scenarios


def _with_schedules() -> dict[str, object]:
    from django.conf import settings

    tasks = copy.deepcopy(settings.TASKS)
    tasks["default"]["OPTIONS"]["SCHEDULES"] = kit_tasks.DAILY
    return tasks


class Scenarios(OffloadTestMixin):
    def test_runs_a_task_and_stores_its_result(self) -> None:
        kit_scenarios.runs_a_task_and_stores_its_result(self.offload_tasks)

    def test_sees_the_tests_own_rows(self) -> None:
        kit_scenarios.sees_the_tests_own_rows(self.offload_tasks)

    def test_records_a_failure(self) -> None:
        kit_scenarios.records_a_failure(self.offload_tasks)

    def test_picks_queues_tasks_and_a_limit(self) -> None:
        kit_scenarios.picks_queues_tasks_and_a_limit(self.offload_tasks)

    def test_drains_what_tasks_enqueue(self) -> None:
        kit_scenarios.drains_what_tasks_enqueue(self.offload_tasks)

    def test_stops_a_task_that_enqueues_itself(self) -> None:
        with pytest.MonkeyPatch.context() as monkeypatch:
            kit_scenarios.stops_a_task_that_enqueues_itself(self.offload_tasks, monkeypatch)

    def test_retries_when_the_clock_says_so(self) -> None:
        kit_scenarios.retries_when_the_clock_says_so(self.offload_tasks)

    def test_runs_delayed_tasks_once_due(self) -> None:
        kit_scenarios.runs_delayed_tasks_once_due(self.offload_tasks)

    def test_asserts_on_what_was_enqueued(self) -> None:
        kit_scenarios.asserts_on_what_was_enqueued(self.offload_tasks)

    def test_fires_a_daily_schedule_as_of_a_time(self) -> None:
        tasks = self.offload_tasks
        with override_settings(TASKS=_with_schedules()):
            day_one = datetime(2026, 1, 1, 12, tzinfo=UTC)
            assert tasks.fire_schedules(now=day_one) == []  # first seen: starts from 3 a.m.
            fired = tasks.fire_schedules(now=datetime(2026, 1, 2, 3, 0, 30, tzinfo=UTC))
            assert [(f.schedule, f.fire_at.hour) for f in fired] == [("nightly", 3)]
            tasks.assert_enqueued(kit_tasks.count_users, count=1)
            [result] = tasks.run()
            assert result.return_value == 0
            # The same tick never fires twice; the next day's does.
            assert tasks.fire_schedules(now=datetime(2026, 1, 2, 4, tzinfo=UTC)) == []
            fired = tasks.fire_schedules(
                now=datetime(2026, 1, 4, 3, tzinfo=UTC), since=datetime(2026, 1, 3, tzinfo=UTC)
            )
            assert [f.fire_at.day for f in fired] == [4]


class InTestCase(Scenarios, TestCase):
    def test_nothing_is_committed(self) -> None:
        add.enqueue(1, 2)
        [result] = self.offload_tasks.run()
        assert result.return_value == 3
        assert connection.in_atomic_block
        other = open_private("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM offload_task")
                assert cursor.fetchone()[0] == 0
        finally:
            other.close()

    def test_worker_refuses_to_run_inside_the_test_transaction(self) -> None:
        with pytest.raises(CommandError, match=r"inside an open transaction.*offload\.testing"):
            call_command("offload", "worker", "--burst", stdout=StringIO(), stderr=StringIO())


class InTransactionTestCase(Scenarios, TransactionTestCase):
    pass


class OnAnotherDatabase(OffloadTestMixin, TestCase):
    databases = {"default", "queue"}
    offload_backend = "separate"

    def test_runs_the_backends_tasks_on_its_database(self) -> None:
        enqueued = add.using(backend="separate").enqueue(4, 5)
        self.offload_tasks.assert_enqueued(add, args=[4, 5])
        [result] = self.offload_tasks.run()
        assert (result.id, result.return_value) == (enqueued.id, 9)
        assert connection.in_atomic_block
