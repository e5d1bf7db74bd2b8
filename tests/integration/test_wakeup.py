"""Waking idle workers at enqueue: NOTIFY on PostgreSQL, local sockets elsewhere."""

import os
import stat
import time

import pytest
from django.db import connection, transaction

from offload.models import TaskRecord
from offload.states import State
from offload.store import operations, wakeup
from offload.worker import claims
from tests.app import tasks
from tests.helpers import override_options, running_worker, wait_for


@pytest.fixture
def key(tmp_path):
    # A key of the test's own, so no other process's sockets take part.
    return f"sqlite:{tmp_path}/test-{os.getpid()}"


def test_an_idle_worker_wakes_at_enqueue_not_at_its_next_poll(backend, monkeypatch):
    # Polls 30 s apart: a task that starts within seconds was woken for.
    monkeypatch.setattr(claims, "FIRST_POLL_SECONDS", 30.0)
    with override_options(POLL_INTERVAL=30.0), running_worker() as running:
        wait_for(lambda: _idle(running), what="the first claim")
        for round_ in range(3):
            with transaction.atomic():
                result = tasks.add.enqueue(round_, 1)
                # Nothing is sent before the commit: the worker must not look
                # for a row it cannot see yet, then sleep for 30 s.
            wait_for(
                lambda pk=result.id: TaskRecord.objects.get(pk=pk).status == State.SUCCESSFUL,
                timeout=10,
                what=f"task {round_} to run",
            )


@pytest.mark.parametrize("action", ["retry", "run_again", "resume"])
def test_an_operator_making_tasks_ready_wakes_a_worker_as_an_enqueue_does(
    backend, monkeypatch, action
):
    # The same 30 s polls: an admin retry, run-again or queue resume must wake
    # the idle worker at once, as an enqueue does, on every engine.
    monkeypatch.setattr(claims, "FIRST_POLL_SECONDS", 30.0)
    store = backend.store
    with override_options(POLL_INTERVAL=30.0), running_worker() as running:
        wait_for(lambda: _idle(running), what="the first claim")
        started = time.monotonic()
        failed = tasks.fail.enqueue("once")
        wait_for(lambda: _status(failed.id) == State.FAILED, timeout=10, what="the enqueue")
        enqueue_seconds = time.monotonic() - started
        if action == "resume":
            operations.pause_queue(store, "default")
            held = tasks.noop.enqueue()
        # Let the worker finish its claim and fall asleep until its next poll.
        time.sleep(1.0)
        started = time.monotonic()
        if action == "retry":
            assert operations.retry(store, [failed.id]) == 1
            wait_for(
                lambda: TaskRecord.objects.get(pk=failed.id).attempt == 2,
                timeout=10,
                what="the retried task to run",
            )
        elif action == "run_again":
            (copy,) = operations.run_again(store, [failed.id])
            wait_for(lambda: _status(copy) == State.FAILED, timeout=10, what="the copy to run")
        else:
            operations.resume_queue(store, "default")
            wait_for(lambda: _status(held.id) == State.SUCCESSFUL, timeout=10, what="the held task")
        assert time.monotonic() - started < max(5.0, 5 * enqueue_seconds)


def _status(task_id: int) -> str:
    return TaskRecord.objects.get(pk=task_id).status


def _idle(running) -> bool:
    # The worker has made its first (empty) claim, so its wake-up source exists.
    worker = running.worker
    return worker.wakeups.listening or worker.wakeups.has_socket


def test_a_rolled_back_enqueue_sends_nothing(key):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL's NOTIFY is delivered at commit by the server")
    listener = wakeup.WakeSocket(key)
    try:
        waker = wakeup.waker_for(key)
        with transaction.atomic():
            connection.on_commit(lambda: waker.wake(["default"]))
            transaction.set_rollback(True)
        assert listener.read() == set()
        with transaction.atomic():
            connection.on_commit(lambda: waker.wake(["default"]))
        assert listener.read() == {"default"}
    finally:
        listener.close()


def test_sockets_carry_queue_names_and_dead_ones_are_removed(key):
    first, second = wakeup.WakeSocket(key), wakeup.WakeSocket(key)
    waker = wakeup.Waker(key)
    try:
        waker.wake(["emails", "default"])
        waker.wake(["default"])
        assert first.read() == {"emails", "default"}
        assert second.read() == {"default", "emails"}
        assert first.read() == set()  # read once

        # A killed worker leaves its socket file behind: the next sender that
        # finds it dead removes it, and the others still get their wake-up.
        second._socket.close()
        waker.wake(["default"])
        assert not second.path.exists()
        assert first.read() == {"default"}

        # Too many queue names for one datagram: "any queue".
        waker.wake([f"queue-{n:04}" for n in range(500)])
        assert first.read() is None
    finally:
        first.close()
        second.close()
    assert not first.path.exists()


def test_the_socket_directory_is_private_and_a_planted_one_is_refused(key, monkeypatch, tmp_path):
    directory = wakeup.wake_dir(key)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    monkeypatch.setattr(wakeup.tempfile, "gettempdir", lambda: str(tmp_path))
    planted = wakeup.wake_dir(key)
    planted.chmod(0o777)  # someone else could write there
    with pytest.raises(PermissionError, match="not a private directory"):
        wakeup.WakeSocket(key)
    # A sender only loses its wake-ups; the workers still poll.
    wakeup.Waker(key).wake(["default"])
