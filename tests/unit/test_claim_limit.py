"""How many tasks a worker claims at once, from how long its tasks take."""

from offload.worker.loop import CLAIM_HORIZON_SECONDS, Worker


def _worker(mean: float | None, batch_size: int = 10) -> Worker:
    worker = Worker.__new__(Worker)  # no database: only the sizing rule is under test
    worker.batch_size = batch_size
    worker.threads = 1
    worker._mean_task_seconds = mean
    return worker


def test_one_at_a_time_until_a_task_has_been_timed():
    assert _worker(None).claim_limit() == 1


def test_tiny_tasks_are_claimed_in_full_batches():
    assert _worker(0.0001).claim_limit() == 10
    assert _worker(0.0).claim_limit() == 10
    assert _worker(0.0001, batch_size=3).claim_limit() == 3


def test_slow_tasks_are_claimed_one_by_one():
    assert _worker(CLAIM_HORIZON_SECONDS).claim_limit() == 1
    assert _worker(5.0).claim_limit() == 1


def test_in_between_claims_what_starts_within_the_horizon():
    assert _worker(CLAIM_HORIZON_SECONDS / 4).claim_limit() == 4
