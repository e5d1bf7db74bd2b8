"""A hundred processes enqueue the same unique key at the same moment: one task
is left, and every process gets that task's result."""

import pytest
from django.db import connection

from offload.models import TaskRecord

RACERS = 100
# PostgreSQL's default max_connections is 100 (the server of CI and of a
# developer's machine alike), and the test's own connections, or another test
# run on the same server, hold some: there, every connection left but two.
FEWEST_ON_POSTGRESQL = 80


def _racers() -> int:
    if connection.vendor != "postgresql":
        return RACERS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
        )
        (free,) = cursor.fetchone()
    racers = min(RACERS, free - 2)
    assert racers >= FEWEST_ON_POSTGRESQL, f"only {free} connections free on the server"
    return racers


@pytest.mark.parametrize("on_duplicate", ["existing", "replace"])
def test_racing_processes_leave_one_task(start_process, on_duplicate):
    racers = _racers()
    print(f"\n[{connection.vendor}] {racers} racing processes")
    proc = start_process("-m", "tests.acceptance.unique_racer", str(racers), on_duplicate)
    output = proc.communicate(timeout=180)[0]
    assert proc.returncode == 0, output
    lines = output.splitlines()
    assert lines[0] == f"ready {racers}"

    (task,) = TaskRecord.objects.all()
    assert task.unique_key == "customer-42"
    assert sorted(lines[1:]) == [f"id {task.pk}"] * racers
    # Replaced or not, the task holds the arguments one of the racers sent.
    assert task.args == [42]
    assert task.kwargs in ({}, {"full": True})
