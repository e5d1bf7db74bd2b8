"""The worker's own rules, in process."""

import pytest
from django.core.management import CommandError, call_command

from offload.exceptions import BackendMisconfigured
from offload.worker import Worker
from tests.app import tasks


def test_a_worker_refuses_queues_the_backend_does_not_have():
    with pytest.raises(BackendMisconfigured, match="'emial'"):
        Worker("default", queues=["default", "emial"])


def test_the_command_reports_bad_flags_clearly():
    with pytest.raises(CommandError, match="'emial'"):
        call_command("offload", "worker", "--burst", "--queues", "emial")
    with pytest.raises(CommandError, match="at least one queue"):
        call_command("offload", "worker", "--burst", "--queues", " , ")
    with pytest.raises(CommandError, match="nope"):
        call_command("offload", "worker", "--burst", "--backend", "nope")


def test_the_command_prints_what_it_did(capsys):
    tasks.add.enqueue(1, 2)
    tasks.fail.enqueue("x")
    call_command("offload", "worker", "--burst")
    out = capsys.readouterr().out
    assert "Processed 2 task(s): 1 successful, 1 failed, 0 given back" in out
