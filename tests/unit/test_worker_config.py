"""A worker's settings travel to its task process unchanged."""

import dataclasses
import json

import pytest

from offload.worker.config import WorkerConfig
from offload.worker.process import ProcessSpec


def test_a_process_spec_survives_json_as_the_same_object():
    worker = WorkerConfig(
        "default", queues=["a", "b"], exclude_queues=["c"], worker_id="w/p1", threads=3,
        async_concurrency=7, max_tasks=10, max_memory=1 << 30, shutdown_timeout=2.5,
        control_fd=5, status_fd=6, log_sql=True, supervisor_pid=42,
    )  # fmt: skip
    spec = ProcessSpec(
        worker, sys_path=["/x"], database_names={"default": "db.sqlite3"}, label="p1",
        verbosity=3, log_format="json", burst=True,
    )  # fmt: skip
    again = ProcessSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.worker.queues == ("a", "b")
    assert again.worker.exclude_queues == ("c",)


def test_every_worker_setting_is_in_the_serialised_form():
    fields = WorkerConfig().to_dict()
    assert set(fields) == {f.name for f in dataclasses.fields(WorkerConfig)}
    assert WorkerConfig.from_dict(fields) == WorkerConfig()


def test_the_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        WorkerConfig().threads = 2  # type: ignore[misc]
