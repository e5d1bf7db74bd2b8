"""One shape for every error record, raised or not."""

from offload.exceptions import WorkerCrashed
from offload.failures import error_record, exception_record


def test_a_raised_exception_and_a_crash_are_recorded_alike():
    try:
        raise ValueError("bad input")
    except ValueError as exc:
        raised = exception_record(exc, attempt=2, worker_id="w1")
    crashed = error_record(WorkerCrashed, "process died", attempt=2, worker_id="w1")
    assert set(raised) == set(crashed)
    assert raised["exception_class_path"] == "builtins.ValueError"
    assert raised["traceback"].startswith("Traceback (most recent call last)")
    assert raised["traceback"].endswith("ValueError: bad input\n")
    assert crashed["traceback"] == "offload.exceptions.WorkerCrashed: process died\n"
    assert (raised["attempt"], raised["worker_id"]) == (crashed["attempt"], crashed["worker_id"])
