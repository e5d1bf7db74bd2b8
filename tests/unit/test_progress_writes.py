"""When the dispatcher must wake to write reported progress."""

from offload.progress import ProgressBoard, make_progress
from offload.worker.progress_writes import ProgressWrites


def test_nothing_reported_means_no_write_is_due():
    writes = ProgressWrites(ProgressBoard(), interval=1.0)
    assert writes.due_at() is None


def test_a_report_makes_the_next_write_due_and_wakes_the_dispatcher_once():
    nudges: list[int] = []
    writes = ProgressWrites(ProgressBoard(lambda: nudges.append(1)), interval=1.0)
    writes.board.report((1, 1), make_progress(1, 10))
    writes.board.report((1, 1), make_progress(2, 10))
    assert writes.due_at() == 0.0  # never written: due at once
    assert len(nudges) == 1
