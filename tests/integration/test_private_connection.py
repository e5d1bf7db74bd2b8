"""The worker's own connection (store.connection.open_private): its session
settings, and that it stays its own when the project pools connections."""

import pytest
from django.db import connection

from offload.store.connection import open_private

pytestmark = pytest.mark.django_db(transaction=True)


def _enable_sort(wrapper) -> str:
    with wrapper.cursor() as cursor:
        cursor.execute("SHOW enable_sort")
        return cursor.fetchone()[0]


def test_the_worker_session_settings_hold_after_a_reconnect_and_stay_off_the_shared_connection():
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL has settings for the worker's session")
    private = open_private("default")
    try:
        assert _enable_sort(private) == "off"
        private.close()  # as the worker loop does after a database error
        assert _enable_sort(private) == "off"
        assert _enable_sort(connection) == "on"
    finally:
        private.close()


def test_the_worker_connection_is_its_own_when_the_project_pools_connections(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("Django pools connections on PostgreSQL only")
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "pool", True)
    private = open_private("default")
    try:
        # A pooled connection cannot be persistent: Django would refuse to open it.
        assert private.pool is None
        assert _enable_sort(private) == "off"
    finally:
        private.close()
    assert connection.settings_dict["OPTIONS"]["pool"] is True  # the project's own, untouched
