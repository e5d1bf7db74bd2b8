"""Progress reports: what ``report_progress`` accepts, and the board between threads."""

import math
import threading

import pytest

from offload.conf import parse_options
from offload.exceptions import InvalidProgress
from offload.progress import MAX_MESSAGE_LENGTH, Progress, ProgressBoard, make_progress
from offload.worker.runner import OffloadTaskContext


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((-1,), "current must be a finite number >= 0"),
        ((1, -2), "total must be a finite number >= 0"),
        ((math.nan,), "finite"),
        ((math.inf, None), "finite"),
        ((5, 3), "current (5) is above total (3)"),
        (("3",), "current must be a number, got str"),
        ((True,), "current must be a number, got bool"),
        ((1, "10"), "total must be a number, got str"),
        ((1, 2, None), "message must be a str, got NoneType"),
    ],
)
def test_nonsense_is_refused_with_a_clear_value_error(args, fragment):
    with pytest.raises(InvalidProgress) as caught:
        make_progress(*args)
    assert isinstance(caught.value, ValueError)
    assert fragment in str(caught.value)


def test_good_reports_and_their_fraction():
    assert make_progress(0) == Progress(0.0, None, "")
    assert make_progress(3, 4, "rows").fraction == 0.75
    assert make_progress(2, 2).fraction == 1.0
    assert make_progress(0, 0).fraction is None  # nothing to do: no percentage
    assert make_progress(7).fraction is None


def test_a_long_message_is_cut():
    assert len(make_progress(1, 2, "x" * 1000).message) == MAX_MESSAGE_LENGTH


def test_the_context_checks_then_hands_the_report_over():
    seen: list[Progress] = []
    context = OffloadTaskContext(task_result=None, progress_sink=seen.append)
    context.report_progress(1, 2, "half")
    with pytest.raises(ValueError, match="above total"):
        context.report_progress(3, 2)
    assert seen == [Progress(1.0, 2.0, "half")]
    # Without a worker (a task called directly), reports are checked and dropped.
    OffloadTaskContext(task_result=None).report_progress(1)


def test_the_board_keeps_the_latest_report_and_wakes_once():
    wakes: list[int] = []
    board = ProgressBoard(lambda: wakes.append(1))
    assert not board
    board.report((1, 1), Progress(1))
    board.report((1, 1), Progress(2))
    board.report((2, 1), Progress(5))
    assert len(wakes) == 1  # only the first report after a write
    assert board.take([(1, 1), (9, 9)]) == {(1, 1): Progress(2)}
    taken = board.take_all()
    assert taken == {(2, 1): Progress(5)}
    assert not board
    board.report((2, 1), Progress(6))
    board.put_back(taken)  # a failed write does not undo a newer report
    assert board.take_all() == {(2, 1): Progress(6)}
    assert len(wakes) == 2


def test_the_board_is_safe_between_threads():
    board = ProgressBoard()

    def report(task_id: int) -> None:
        for n in range(1000):
            board.report((task_id, 1), Progress(n))

    threads = [threading.Thread(target=report, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert board.take_all() == {(i, 1): Progress(999) for i in range(4)}


def test_progress_interval_is_an_option_with_bounds():
    assert parse_options({}, {"default"}).progress_interval == 1.0
    assert parse_options({"PROGRESS_INTERVAL": 0.5}, {"default"}).progress_interval == 0.5
    problems = parse_options({"PROGRESS_INTERVAL": 0.01}, {"default"}).problems
    assert problems == ["OPTIONS['PROGRESS_INTERVAL'] must be between 0.1 and 3,600, got 0.01."]
    assert "must be int or float" in parse_options({"PROGRESS_INTERVAL": "1"}, {"d"}).problems[0]
