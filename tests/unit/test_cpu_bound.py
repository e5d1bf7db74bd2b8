"""Which claimed tasks are CPU-bound, and which of a claim a process keeps."""

import pytest

from offload.exceptions import InvalidTaskOptions
from offload.task import task
from offload.worker.cpu_bound import CpuBound
from tests.unit.worker_parts import claimed

CRUNCH = "tests.app.tasks.crunch"  # @task(cpu_bound=True)
PLAIN = "tests.app.tasks.crunch_unmarked"


def test_a_task_is_cpu_bound_by_its_flag_or_by_its_queue():
    cpu = CpuBound(["reports"])
    assert claimed(1, task_path=CRUNCH) in cpu
    assert claimed(2, task_path=PLAIN, queue_name="reports") in cpu
    assert claimed(3, task_path=PLAIN) not in cpu
    # An async task never counts, whatever its queue.
    assert claimed(4, task_path=PLAIN, queue_name="reports", is_async=True) not in cpu


def test_a_path_that_does_not_resolve_is_not_cpu_bound():
    cpu = CpuBound()
    assert claimed(1, task_path="tests.app.tasks.not_a_task") not in cpu
    assert claimed(2, task_path="no.such.module.task") not in cpu


def test_a_claim_keeps_one_cpu_bound_task_and_every_other_task():
    cpu = CpuBound()
    batch = [
        claimed(1, task_path=PLAIN),
        claimed(2, task_path=CRUNCH),
        claimed(3, task_path=PLAIN),
        claimed(4, task_path=CRUNCH),
        claimed(5, task_path=CRUNCH),
    ]
    split = cpu.split(batch)
    assert [t.id for t in split.keep] == [1, 2, 3]
    assert [t.id for t in split.passed] == [4, 5]
    assert split.cpu_bound == 3
    assert cpu.held == {2}


def test_while_one_runs_every_cpu_bound_task_is_passed_on_until_it_ends():
    cpu = CpuBound()
    cpu.split([claimed(1, task_path=CRUNCH)])
    split = cpu.split([claimed(2, task_path=CRUNCH), claimed(3, task_path=PLAIN)])
    assert ([t.id for t in split.keep], [t.id for t in split.passed]) == ([3], [2])
    cpu.ended(1)
    assert cpu.held == set()
    assert [t.id for t in cpu.split([claimed(2, task_path=CRUNCH)]).keep] == [2]


def compute() -> None: ...


async def fetch() -> None: ...


def test_cpu_bound_must_be_a_bool_on_a_sync_function():
    assert task(cpu_bound=True)(compute).cpu_bound is True
    with pytest.raises(InvalidTaskOptions, match="cpu_bound must be True or False, got 'yes'"):
        task(cpu_bound="yes")(compute)
    with pytest.raises(InvalidTaskOptions, match="cpu_bound applies to sync functions"):
        task(cpu_bound=True)(fetch)
