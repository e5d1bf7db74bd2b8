"""The worker's own rules, in process."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Count, F
from django.test import override_settings
from django.utils import timezone

from offload.exceptions import BackendMisconfigured
from offload.models import TaskRecord
from offload.states import State
from offload.worker import Worker, WorkerConfig
from tests.app import tasks
from tests.helpers import drain, override_options, running_worker, wait_for


def test_a_worker_refuses_queues_the_backend_does_not_have():
    with pytest.raises(BackendMisconfigured, match="'emial'"):
        Worker(WorkerConfig("default", queues=["default", "emial"]))


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


def test_slow_tasks_are_not_held_while_they_wait():
    """Only the running task is claimed; the rest stay READY for other workers."""

    ids = [tasks.sleep_then_return.enqueue(0.4, i).id for i in range(3)]
    seen = set()
    with running_worker(burst=True) as running:
        deadline = time.monotonic() + 30
        while running.worker.stats.succeeded < 3 and time.monotonic() < deadline:
            counts = dict(
                TaskRecord.objects.filter(pk__in=ids).values_list("status").annotate(n=Count("id"))
            )
            seen.add(counts.get(State.RUNNING, 0))
            time.sleep(0.02)
    assert seen <= {0, 1}, seen
    assert 1 in seen
    assert running.worker.stats.succeeded == 3


def test_a_task_whose_function_changed_kind_since_enqueue_still_runs(backend):
    """The claim routes by the row's is_async flag; a deploy may have changed the function."""
    now_sync = tasks.add.enqueue(2, 3)
    now_async = tasks.async_add.enqueue(4, 5)
    TaskRecord.objects.filter(pk=now_sync.id).update(is_async=True)
    TaskRecord.objects.filter(pk=now_async.id).update(is_async=False)
    assert drain().succeeded == 2
    assert backend.get_result(now_sync.id).return_value == 5
    assert backend.get_result(now_async.id).return_value == 9


def test_the_command_refuses_to_start_on_unmigrated_tables():
    # A migration on disk the database has not applied, as after an upgrade
    # that brings one.
    recorder = MigrationRecorder(connection)
    recorder.record_unapplied("offload", "0001_initial")
    try:
        with pytest.raises(CommandError, match=r"not up to date: run 'manage.py migrate"):
            call_command("offload", "worker", "--burst")
    finally:
        recorder.record_applied("offload", "0001_initial")


def test_a_kind_with_no_tasks_backs_off_while_the_other_drains(backend):
    """With a sync backlog and no async task, async claims back off on their own.

    A claim for one kind has to read past every ready task of the other, so
    asking every few milliseconds would cost more than the work itself.
    """
    for i in range(150):
        tasks.sleep_then_return.enqueue(0.01, i)
    kinds: list[bool | None] = []
    default = {**settings.TASKS["default"]}
    default["OPTIONS"] = {**default["OPTIONS"], "POLL_INTERVAL": 1.0}  # the default
    with (
        override_settings(TASKS={**settings.TASKS, "default": default}),
        running_worker(burst=True) as running,
    ):
        claim = running.worker.store.claim

        def counting_claim(*args, **kwargs):
            kinds.append(kwargs.get("is_async"))
            return claim(*args, **kwargs)

        running.worker.store.claim = counting_claim  # type: ignore[method-assign]
        running.thread.join(timeout=60)
    assert running.worker.stats.succeeded == 150
    async_only = kinds.count(True)
    # The steps double from 20 ms up to POLL_INTERVAL: a handful over the drain.
    assert async_only <= 8, (async_only, len(kinds))


def test_short_async_tasks_are_prefetched_and_a_stop_gives_the_waiting_ones_back():
    # Short async tasks first, so the worker knows its async tasks are short
    # and claims a few more than its slots, to start one the moment one frees.
    for n in range(20):
        tasks.async_add.enqueue(n, n)
    with running_worker(threads=1, async_concurrency=2) as running:
        wait_for(lambda: TaskRecord.objects.filter(status=State.SUCCESSFUL).count() == 20)
        slow = [tasks.async_sleep.enqueue(0.5, n) for n in range(8)]
        wait_for(lambda: running.worker.async_pool.occupancy() == (2, 2), what="two waiting")
        running.worker.stop()
        running.thread.join(timeout=30)
    rows = {row.pk: row for row in TaskRecord.objects.filter(pk__in=[r.id for r in slow])}
    finished = [row for row in rows.values() if row.status == State.SUCCESSFUL]
    # The two running finished; the waiting ones went back as never claimed
    # (no attempt spent), like the rest that were never claimed at all.
    assert len(finished) == 2
    back = [row for row in rows.values() if row.status == State.READY]
    assert len(back) == 6
    assert {row.attempt for row in back} == {0}
    assert {len(row.worker_ids) for row in back} == {0}


def test_a_claim_whose_reply_was_lost_is_given_back_at_the_next_heartbeat():
    """A claim can commit while its reply is lost (a server restart mid-claim):
    the rows are RUNNING under the worker's name, but the worker never heard of
    them. Its heartbeat renews every lease it owns, so they would stay claimed
    and never run; the heartbeat gives them back, as never claimed."""
    with override_options(HEARTBEAT_SECONDS=0.2), running_worker(threads=1) as running:
        wait_for(lambda: running.worker.leases.registered, what="the worker's first heartbeat")
        # Not due, so the worker cannot claim them itself first.
        later = tasks.add.using(run_after=timezone.now() + timedelta(hours=1))
        lost = [later.enqueue(n, n) for n in range(3)]
        # What the lost claim did on the server: the worker's name on the rows.
        TaskRecord.objects.filter(pk__in=[r.id for r in lost]).update(
            status=State.RUNNING, lease_owner=running.worker.worker_id, attempt=F("attempt") + 1,
            worker_ids=[running.worker.worker_id], lease_expires_at=timezone.now(),
        )  # fmt: skip
        wait_for(
            lambda: TaskRecord.objects.filter(
                pk__in=[r.id for r in lost], status=State.SUCCESSFUL
            ).count() == 3,
            what="the orphaned tasks to run",
        )  # fmt: skip
    rows = TaskRecord.objects.filter(pk__in=[r.id for r in lost])
    # Given back as never claimed: the one attempt that ran is their first.
    assert {row.attempt for row in rows} == {1}
    assert running.worker.stats.released == 3
