"""The dispatcher's sleep: woken by its threads and by the supervisor, never late."""

import os
import threading
import time

from offload.store import ALL_QUEUES
from offload.worker import protocol
from offload.worker.wakeups import Wakeups


def _timed_wait(wakeups: Wakeups, timeout: float) -> float:
    begun = time.monotonic()
    wakeups.wait(timeout)
    return time.monotonic() - begun


def test_a_nudge_wakes_a_sleeping_dispatcher_at_once():
    wakeups = Wakeups(ALL_QUEUES)
    wakeups.new_round()
    threading.Timer(0.05, wakeups.nudge).start()
    try:
        assert _timed_wait(wakeups, 10.0) < 5.0
    finally:
        wakeups.close()


def test_a_nudge_before_the_sleep_is_not_missed():
    wakeups = Wakeups(ALL_QUEUES)
    try:
        wakeups.new_round()
        wakeups.nudge()  # the dispatcher was not asleep yet: no pipe write
        assert _timed_wait(wakeups, 10.0) < 5.0
        wakeups.new_round()  # seen: the next sleep lasts its timeout
        assert _timed_wait(wakeups, 0.05) >= 0.04
    finally:
        wakeups.close()


def test_a_notification_skips_the_sleep_until_taken():
    wakeups = Wakeups(ALL_QUEUES)
    try:
        wakeups.new_round()
        wakeups.notified = True
        assert _timed_wait(wakeups, 10.0) < 1.0
        assert wakeups.take_notified() is True
        assert wakeups.take_notified() is False
    finally:
        wakeups.close()


def test_the_supervisor_s_commands_and_its_end_reach_the_dispatcher():
    control_r, control_w = os.pipe()
    heard: list[bytes] = []
    wakeups = Wakeups(ALL_QUEUES, control_r, heard.append)
    try:
        wakeups.new_round()
        os.write(control_w, protocol.STOP)
        wakeups.wait(10.0)
        assert heard == [protocol.STOP]
        os.close(control_w)  # the supervisor is gone
        wakeups.wait(10.0)
        assert heard == [protocol.STOP, b""]
        # Its end was heard once, then the pipe no longer wakes anyone.
        assert _timed_wait(wakeups, 0.05) >= 0.04
        assert heard == [protocol.STOP, b""]
    finally:
        wakeups.close()
        os.close(control_r)


def test_without_listen_or_socket_nothing_claims_to_listen():
    wakeups = Wakeups(ALL_QUEUES)
    try:
        assert not wakeups.listening
        assert not wakeups.has_socket
    finally:
        wakeups.close()


def test_where_a_worker_listens_follows_the_pooler_options():
    from offload.conf import parse_options
    from offload.worker.wakeups import ListenPlan, listen_plan

    def plan(**raw: object) -> ListenPlan:
        options = parse_options(raw, {"default"})
        # tests.settings has no PostgreSQL "direct" alias: only the plan is read here.
        return listen_plan(options)

    assert plan() == ListenPlan(enabled=True, alias=None)
    assert plan(TRANSACTION_POOLER=True) == ListenPlan(enabled=False)
    assert plan(TRANSACTION_POOLER=True, LISTEN_DATABASE="queue").alias == "queue"
