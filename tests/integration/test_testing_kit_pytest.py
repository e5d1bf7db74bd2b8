"""The test kit through its pytest fixture, with pytest-django's ``db`` (one
transaction, rolled back) and ``transactional_db`` (commits, then a flush)."""

from collections.abc import Callable

import pytest
from django.db import connection

from offload.testing import OffloadTasks
from tests.integration import kit_scenarios

# The integration tier marks every test transactional (tests/conftest.py);
# "db" asks for pytest-django's rolled-back transaction instead.
KINDS = [
    pytest.param("db", marks=pytest.mark.django_db(transaction=False), id="db"),
    pytest.param("transactional_db", id="transactional_db"),
]


@pytest.fixture
def kit(request: pytest.FixtureRequest, kind: str, offload_tasks: OffloadTasks) -> OffloadTasks:
    request.getfixturevalue(kind)
    assert connection.in_atomic_block == (kind == "db")
    return offload_tasks


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", kit_scenarios.SCENARIOS, ids=lambda s: s.__name__)
def test_scenario(kit: OffloadTasks, scenario: Callable[[OffloadTasks], None]) -> None:
    scenario(kit)


@pytest.mark.parametrize("kind", KINDS)
def test_stops_a_task_that_enqueues_itself(
    kit: OffloadTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit_scenarios.stops_a_task_that_enqueues_itself(kit, monkeypatch)


def test_fixture_for_another_alias(offload_tasks_for: Callable[[str], OffloadTasks]) -> None:
    assert offload_tasks_for("separate").database == "queue"
