"""How many tasks a worker claims at once, from how long its tasks take."""

from offload.worker.claims import CLAIM_HORIZON_SECONDS, ClaimSizer


def _sizer(mean: float | None, batch_size: int = 10) -> ClaimSizer:
    sizer = ClaimSizer(threads=1, async_limit=100, batch_size=batch_size, max_tasks=None)
    sizer.mean_sync_seconds = mean
    return sizer


def test_one_at_a_time_until_a_task_has_been_timed():
    assert _sizer(None).claim_limit() == 1


def test_tiny_tasks_are_claimed_in_full_batches():
    assert _sizer(0.0001).claim_limit() == 10
    assert _sizer(0.0).claim_limit() == 10
    assert _sizer(0.0001, batch_size=3).claim_limit() == 3


def test_slow_tasks_are_claimed_one_by_one():
    assert _sizer(CLAIM_HORIZON_SECONDS).claim_limit() == 1
    assert _sizer(5.0).claim_limit() == 1


def test_in_between_claims_what_starts_within_the_horizon():
    assert _sizer(CLAIM_HORIZON_SECONDS / 4).claim_limit() == 4
