"""When a task process asks to be replaced."""

from offload.worker.recycling import Recycling


def test_past_max_tasks_it_recycles():
    recycling = Recycling(max_tasks=3, max_memory=None)
    assert recycling.after_settled(2, is_async=False) is None
    assert recycling.after_settled(3, is_async=False) == "ran 3 tasks (max tasks per child: 3)"


def test_memory_is_checked_after_async_tasks_only():
    recycling = Recycling(max_tasks=None, max_memory=100 << 20, measure=lambda: 200 << 20)
    assert recycling.memory_over() == "uses 200 MiB (max memory per child: 100 MiB)"
    assert recycling.after_settled(1, is_async=True) == recycling.memory_over()
    # A sync task's own thread checks memory before it takes its next task.
    assert recycling.after_settled(1, is_async=False) is None


def test_under_the_limit_or_unmeasurable_or_no_limit_it_stays():
    assert Recycling(None, 100, measure=lambda: 100).memory_over() is None
    assert Recycling(None, 100, measure=lambda: None).memory_over() is None
    assert Recycling(None, None, measure=lambda: 1 << 40).memory_over() is None
