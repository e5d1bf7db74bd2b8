"""What a worker counts and says about finished tasks."""

import os

from offload.worker.reporting import Reporter, WorkerStats, label
from tests.unit.worker_parts import failure, success


def test_each_written_outcome_is_counted_once_under_its_kind():
    stats = WorkerStats()
    for outcome in [success(), failure(), failure(retry_in=1.0), failure(cancelled=True)]:
        stats.count(outcome)
    assert (stats.succeeded, stats.failed, stats.retried, stats.cancelled) == (1, 1, 1, 1)
    assert stats.processed == 3  # a retry is not done yet
    stats.count(success(), written=False)
    assert (stats.stale, stats.succeeded) == (1, 1)


def test_outcomes_are_labelled_as_their_final_state():
    assert label(success()) == "SUCCESSFUL"
    assert label(failure()) == "FAILED"
    assert label(failure(retry_in=1.0)) == "RETRY"
    assert label(failure(cancelled=True)) == "CANCELLED"


def test_figures_go_to_the_supervisor_at_most_every_report_interval():
    read, write = os.pipe()
    try:
        reporter = Reporter("w1", 2, write)
        assert reporter.due()
        assert not reporter.due()  # too soon
        assert reporter.due(force=True)
        reporter.report("idle", WorkerStats(succeeded=2), (0, 0), (0, 0))
        assert os.read(read, 1024) == WorkerStats(succeeded=2).line()
    finally:
        os.close(read)
        os.close(write)
