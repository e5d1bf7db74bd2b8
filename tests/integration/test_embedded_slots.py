"""The embedded worker's slots on every database: hosts in one process, stepped by hand."""

from django.db import connection
from django.tasks import TaskResultStatus

from offload.embedded.host import EmbeddedHost, slot_name
from offload.embedded_options import EmbeddedSettings
from offload.models import Lease, WorkerRecord
from offload.store import TaskStore
from tests.app import tasks
from tests.helpers import wait_for


def _host(backend, processes: int = 1) -> EmbeddedHost:
    return EmbeddedHost(backend, EmbeddedSettings(enabled=True, processes=processes))


def test_one_slot_one_worker_and_the_next_host_takes_it_once_freed(backend):
    first, second = _host(backend), _host(backend)
    store = TaskStore(backend.config.database)
    try:
        first.turn(store)
        second.turn(store)
        assert (first.slot, second.slot) == (1, None)
        assert first.worker is not None
        assert second.worker is None
        result = tasks.add.enqueue(2, 3)
        wait_for(lambda: result.refresh() or result.status == TaskResultStatus.SUCCESSFUL)
        assert result.return_value == 5
        assert list(Lease.objects.filter(name__startswith="embedded:").values_list(
            "name", "owner")) == [(slot_name("default", 1), first.worker_id)]  # fmt: skip
        wait_for(lambda: WorkerRecord.objects.filter(pk=first.worker_id).exists())

        first.stop()  # frees the slot and removes the worker row
        assert not Lease.objects.filter(name__startswith="embedded:").exists()
        assert not WorkerRecord.objects.filter(pk=first.worker_id).exists()
        second.turn(store)
        assert second.slot == 1
        result = tasks.add.enqueue(4, 5)
        wait_for(lambda: result.refresh() or result.status == TaskResultStatus.SUCCESSFUL)
        assert result.return_value == 9
    finally:
        first.stop()
        second.stop()
        connection.close()


def test_two_slots_take_two_hosts_and_no_third(backend):
    hosts = [_host(backend, processes=2) for _ in range(3)]
    store = TaskStore(backend.config.database)
    try:
        for host in hosts:
            host.turn(store)
        assert [host.slot for host in hosts] == [1, 2, None]
        for host in hosts:  # renewals keep them, and still no room for the third
            host.turn(store)
        assert [host.slot for host in hosts] == [1, 2, None]
    finally:
        for host in hosts:
            host.stop()
        connection.close()


def test_the_test_clients_requests_start_nothing(client, settings):
    from offload.embedded import startup

    settings.TASKS = {
        "default": {
            "BACKEND": "offload.backend.DatabaseBackend",
            "OPTIONS": {"EMBEDDED": {"ENABLED": True}},
        }
    }
    client.get("/embedded/whoami/")
    assert startup._checked_pid is None or startup._hosts == {}
    assert not WorkerRecord.objects.exists()
