"""Claim sizing and polling, without a worker: plain figures in, a decision out."""

import pytest

from offload.worker.claims import (
    CLAIM_HORIZON_SECONDS,
    CPU_MEMORY_CLAIMS,
    FIRST_POLL_SECONDS,
    ClaimSizer,
    Load,
    Looks,
)


def _load(
    *, sync: int = 0, async_: int = 0, finished: int = 0, unwritten: int = 0, cpu: int = 0
) -> Load:
    return Load(finished=finished, unwritten=unwritten, sync=sync, async_=async_, cpu=cpu)


def test_an_idle_worker_asks_for_either_kind_as_much_as_both_can_take():
    sizer = ClaimSizer(threads=4, async_limit=100, batch_size=20, max_tasks=None)
    assert sizer.room(_load(), set()) == (4, None)


def test_a_drained_kind_is_not_asked_for():
    sizer = ClaimSizer(threads=4, async_limit=100, batch_size=20, max_tasks=None)
    assert sizer.room(_load(), {True}) == (4, False)
    assert sizer.room(_load(), {False}) == (20, True)  # the async room, capped at a batch
    assert sizer.room(_load(), {False, True}) is None


def test_busy_threads_with_half_their_prefetch_waiting_are_not_topped_up():
    sizer = ClaimSizer(threads=2, async_limit=0, batch_size=10, max_tasks=None)
    sizer.mean_sync_seconds = CLAIM_HORIZON_SECONDS / 10  # ten per thread fit
    assert sizer.sync_target() == 20
    assert sizer.room(_load(sync=11), set()) is None
    assert sizer.room(_load(sync=10), set()) == (10, False)


def test_max_tasks_counts_finished_unwritten_and_held_tasks():
    sizer = ClaimSizer(threads=4, async_limit=0, batch_size=20, max_tasks=10)
    assert sizer.room(_load(finished=5, unwritten=2, sync=1), set()) == (2, False)
    assert sizer.room(_load(finished=5, unwritten=2, sync=3), set()) is None


def test_short_async_tasks_are_prefetched_beyond_the_limit():
    sizer = ClaimSizer(threads=1, async_limit=4, batch_size=20, max_tasks=None)
    assert sizer.async_target() == 4  # nothing timed yet
    sizer.timed(True, 0.001)
    assert sizer.async_target() == 8
    sizer.timed(True, 10.0)  # the average moves towards slow tasks
    assert sizer.async_target() == 4


def test_task_times_are_a_moving_average_per_kind():
    sizer = ClaimSizer(threads=1, async_limit=1, batch_size=1, max_tasks=None)
    sizer.timed(False, 1.0)
    sizer.timed(False, 2.0)
    assert sizer.mean_sync_seconds == pytest.approx(0.7 * 1.0 + 0.3 * 2.0)
    assert sizer.mean_async_seconds is None


def test_a_kind_that_came_short_backs_off_doubling_up_to_the_poll_interval():
    looks = Looks(poll_interval=0.1)
    assert looks.drained(0.0) == set()
    looks.came_short((False,), now=10.0, listening=False, due=None)
    assert looks.drained(10.0) == {False}
    assert looks.look_at[False] == pytest.approx(10.0 + FIRST_POLL_SECONDS)
    for _ in range(10):
        looks.came_short((False,), now=10.0, listening=False, due=None)
    assert looks.polls[False] == 0.1
    looks.found({False})
    assert looks.polls[False] == FIRST_POLL_SECONDS
    looks.now_all()
    assert looks.drained(10.0) == set()


def test_with_listen_the_next_look_is_a_poll_interval_away_or_the_next_due_task():
    looks = Looks(poll_interval=5.0)
    looks.came_short((False, True), now=0.0, listening=True, due=None)
    assert looks.next_look(None) == 5.0
    looks.came_short((True,), now=0.0, listening=True, due=0.5)
    assert looks.next_look(True) == 0.5
    assert looks.next_look(None) == 0.5
    assert looks.next_look(False) == 5.0


def test_a_process_holding_a_cpu_bound_task_claims_nothing_more():
    sizer = ClaimSizer(threads=4, async_limit=100, batch_size=20, max_tasks=None)
    # Three threads and every async slot free: still nothing, of either kind.
    assert sizer.room(_load(sync=1, cpu=1), set()) is None
    assert sizer.room(_load(sync=1, cpu=1), {False}) is None
    assert sizer.room(_load(sync=1), set()) == (3, None)


def test_after_cpu_bound_tasks_a_process_claims_only_what_its_free_threads_start():
    sizer = ClaimSizer(threads=4, async_limit=0, batch_size=20, max_tasks=None)
    sizer.mean_sync_seconds = CLAIM_HORIZON_SECONDS / 100  # tiny tasks: full batches
    assert sizer.room(_load(), set()) == (20, False)
    sizer.claimed(tasks=4, cpu_bound=1)
    assert sizer.room(_load(), set()) == (4, False)
    assert sizer.room(_load(sync=3), set()) == (1, False)


def test_the_prefetch_comes_back_after_claims_without_cpu_bound_tasks():
    sizer = ClaimSizer(threads=2, async_limit=0, batch_size=10, max_tasks=None)
    sizer.mean_sync_seconds = CLAIM_HORIZON_SECONDS / 100
    sizer.claimed(tasks=2, cpu_bound=2)
    for _ in range(CPU_MEMORY_CLAIMS - 1):
        sizer.claimed(tasks=0, cpu_bound=0)  # an empty claim proves nothing
        sizer.claimed(tasks=2, cpu_bound=0)
    assert sizer.sync_target() == 2
    sizer.claimed(tasks=1, cpu_bound=0)
    assert sizer.sync_target() == 20


def test_no_op_tasks_keep_their_full_batches():
    sizer = ClaimSizer(threads=1, async_limit=0, batch_size=20, max_tasks=None)
    sizer.mean_sync_seconds = 0.0001
    for _ in range(50):
        sizer.claimed(tasks=20, cpu_bound=0)
    assert sizer.room(_load(), set()) == (20, False)
