"""The one rule for an attempt that ends without an outcome of its own."""

import json

from offload.exceptions import AttemptGivenBack, WorkerLost
from offload.failures import NOT_STARTED, cut_short


def test_an_attempt_given_back_before_its_code_started_leaves_no_trace():
    end = cut_short(AttemptGivenBack, "stopping", started=False, attempt=1, worker_id="w/p1")
    assert end == NOT_STARTED
    assert end.error_json is None
    assert not end.spent


def test_an_attempt_cut_short_after_its_code_started_is_recorded_and_spent():
    end = cut_short(WorkerLost, "lease expired", started=True, attempt=2, worker_id="w/p1")
    assert end.spent
    assert end.error_json is not None
    record = json.loads(end.error_json)
    assert record["exception_class_path"] == "offload.exceptions.WorkerLost"
    assert record["traceback"] == "offload.exceptions.WorkerLost: lease expired\n"
    assert (record["attempt"], record["worker_id"]) == (2, "w/p1")
    assert record["at"]
