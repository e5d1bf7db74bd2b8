"""Which engines offload accepts, decided from the settings alone."""

from types import SimpleNamespace

import pytest

from offload.exceptions import UnsupportedDatabase
from offload.store.vendor import engine_problem, vendor_for


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite", "mysql"])
def test_supported_engines_pass(vendor):
    assert engine_problem(SimpleNamespace(vendor=vendor, alias="default")) is None


def test_another_engine_is_refused_with_its_name():
    oracle = SimpleNamespace(vendor="oracle", alias="legacy")
    assert engine_problem(oracle) == (
        "offload supports PostgreSQL, MariaDB and SQLite; database 'legacy' is oracle."
    )
    with pytest.raises(UnsupportedDatabase, match="'legacy' is oracle"):
        vendor_for(oracle)


def test_mysql_is_told_from_mariadb():
    mysql = SimpleNamespace(vendor="mysql", alias="default", mysql_is_mariadb=False)
    with pytest.raises(UnsupportedDatabase, match="is MySQL"):
        vendor_for(mysql)
    mariadb = SimpleNamespace(vendor="mysql", alias="default", mysql_is_mariadb=True)
    assert vendor_for(mariadb).name == "mysql"


def test_lock_conflicts_are_told_apart_from_outages():
    from django.db import OperationalError

    from offload.store.vendor import is_lock_conflict

    def wrapped(cause: Exception) -> OperationalError:
        error = OperationalError(*cause.args)
        error.__cause__ = cause
        return error

    class PgError(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__("boom")
            self.sqlstate = sqlstate

    assert is_lock_conflict(wrapped(Exception(1213, "Deadlock found")))
    assert is_lock_conflict(wrapped(Exception(1205, "Lock wait timeout exceeded")))
    assert is_lock_conflict(wrapped(PgError("40P01")))
    assert not is_lock_conflict(wrapped(Exception(2013, "Lost connection to server")))
    assert not is_lock_conflict(wrapped(PgError("08006")))
    assert not is_lock_conflict(OperationalError("database is locked"))
