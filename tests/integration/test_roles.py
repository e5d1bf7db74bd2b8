"""Elected roles: one holder works at a time, a failing turn does not end the role."""

import pytest

from offload.models import Lease
from offload.store import TaskStore
from offload.worker.roles import ElectedRole
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Counting(ElectedRole):
    lease_name = "test-role"
    label = "Test turn"

    def __init__(self, owner: str, fail_first: bool = False) -> None:
        super().__init__("default", owner)
        self.turns = 0
        self.fail_first = fail_first

    def lease_seconds(self) -> float:
        return 30

    def pause_seconds(self) -> float:
        return 0.01

    def work(self, store: TaskStore) -> int:
        self.turns += 1
        if self.fail_first and self.turns == 1:
            raise RuntimeError("a bug in one turn")
        return 1


def test_only_the_holder_works():
    first, second = Counting("host-a:1"), Counting("host-b:1")
    assert first.turn() == 1
    assert second.turn() == 0
    assert (first.turns, second.turns) == (1, 0)


def test_a_turn_that_raises_does_not_end_the_role_and_stopping_hands_it_back(caplog):
    role = Counting("host-a:1", fail_first=True)
    role.start()
    try:
        wait_for(lambda: role.turns >= 3, what="turns after the failing one")
    finally:
        role.stop()
    assert "Test turn failed unexpectedly" in caplog.text
    assert not Lease.objects.filter(name="test-role").exists()
    # Handed back: another supervisor takes the role at once.
    assert Counting("host-b:1").turn() == 1
