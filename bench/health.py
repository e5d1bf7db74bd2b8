"""Time ``offload health`` (and ``offload status``) on a table of 1,000,000 tasks.

    OFFLOAD_TEST_DB=postgres python -m bench.health [--tasks N] [--repeat K] [--explain]

Uses the test settings (``tests.settings``) and a fresh test database of its
own, created and dropped here. The rows: 70% SUCCESSFUL and 5% FAILED, finished
over the last day; 24% READY over five priorities and three queues, half of
them due (over the last day), half scheduled for the next day; 1% RUNNING; and
50 worker rows. On PostgreSQL the rows are made by one INSERT ... SELECT over
``generate_series``; elsewhere by ``bulk_create`` (slower: use fewer tasks).

Each variant of the command runs ``--repeat`` times through ``call_command``
(the queries and the output, not Python's start-up), then once more as its own
process (``python -m django offload health ...``, what a probe pays). With
``--explain``, the plan of every statement the full health check runs is
printed (EXPLAIN ANALYZE on PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS: dict[str, tuple[str, ...]] = {
    "health (database only)": ("health",),
    "health --worker": ("health", "--worker"),
    "health --worker --queue emails": ("health", "--worker", "--queue", "emails"),
    "health --max-lag 60": ("health", "--max-lag", "60"),
    "health --max-lag 60 --queue emails": ("health", "--max-lag", "60", "--queue", "emails"),
    "health --max-failures 100": ("health", "--max-failures", "100"),
    "health --max-failures 100 --window 300": (
        "health", "--max-failures", "100", "--window", "300",
    ),
    "health, all checks": ("health", "--worker", "--max-lag", "60", "--max-failures", "100"),
    "health --liveness": ("health", "--liveness", "--heartbeat-file", "HEARTBEAT"),
    "status": ("status",),
}  # fmt: skip
FULL = VARIANTS["health, all checks"]

PG_FILL = """
INSERT INTO offload_task (
    task_path, backend, queue_name, priority, status, is_async, run_after, available_at,
    enqueued_at, started_at, last_attempted_at, finished_at, attempt, max_attempts,
    worker_ids, args, kwargs, errors)
SELECT 'bench.tasks.t' || (i %% 20), 'default', (ARRAY['default', 'emails', 'reports'])[i %% 3 + 1],
       (ARRAY[-10, 0, 0, 5, 50])[i %% 5 + 1], s.status, false, NULL,
       CASE WHEN s.status = 'READY' AND i %% 2 = 0 THEN now() + (i %% 86400) * interval '1 second'
            ELSE now() - (i %% 86400) * interval '1 second' END,
       now() - (i %% 86400) * interval '1 second',
       CASE WHEN s.status IN ('SUCCESSFUL', 'FAILED', 'RUNNING') THEN now() END,
       CASE WHEN s.status IN ('SUCCESSFUL', 'FAILED', 'RUNNING') THEN now() END,
       CASE WHEN s.status IN ('SUCCESSFUL', 'FAILED')
            THEN now() - (i %% 86400) * interval '1 second' END,
       CASE WHEN s.status = 'READY' THEN 0 ELSE 1 END, 1,
       '[]'::jsonb, '[1, 2]'::jsonb, '{}'::jsonb, '[]'::jsonb
FROM generate_series(1, %s) AS i,
LATERAL (SELECT CASE WHEN i %% 100 < 70 THEN 'SUCCESSFUL' WHEN i %% 100 < 75 THEN 'FAILED'
                     WHEN i %% 100 < 99 THEN 'READY' ELSE 'RUNNING' END AS status) AS s
"""


def _fill_elsewhere(count: int) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from offload.models import TaskRecord
    from offload.states import State

    now = timezone.now()
    batch: list[TaskRecord] = []
    for i in range(count):
        slot = i % 100
        status = (State.SUCCESSFUL if slot < 70 else State.FAILED if slot < 75
                  else State.READY if slot < 99 else State.RUNNING)  # fmt: skip
        at = now - timedelta(seconds=i % 86400)
        if status == State.READY and i % 2 == 0:
            at = now + timedelta(seconds=i % 86400)
        done = status in (State.SUCCESSFUL, State.FAILED)
        batch.append(TaskRecord(
            task_path=f"bench.tasks.t{i % 20}", backend="default",
            queue_name=("default", "emails", "reports")[i % 3], priority=(-10, 0, 0, 5, 50)[i % 5],
            status=status, available_at=at, enqueued_at=at,
            finished_at=now - timedelta(seconds=i % 86400) if done else None,
            attempt=0 if status == State.READY else 1, args=[1, 2],
        ))  # fmt: skip
        if len(batch) == 5000:
            TaskRecord.objects.bulk_create(batch)
            batch = []
    TaskRecord.objects.bulk_create(batch)


def _fill(count: int) -> None:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from offload.models import WorkerRecord

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_FILL, [count])
            cursor.execute("ANALYZE offload_task")
        else:
            _fill_elsewhere(count)
            if connection.vendor == "mysql":
                cursor.execute("ANALYZE TABLE offload_task")
                cursor.fetchall()
    now = timezone.now()
    WorkerRecord.objects.bulk_create(
        WorkerRecord(
            id=f"bench:{i}/p1", name=f"bench:{i}/p1", hostname=f"host-{i % 5}", pid=1000 + i,
            supervisor_pid=1000 + i, backend="default", queues="*" if i % 2 else "default",
            threads=4, started_at=now, heartbeat_at=now - timedelta(seconds=i),
        )
        for i in range(50)
    )  # fmt: skip


def _with_file(argv: tuple[str, ...]) -> tuple[str, ...]:
    """``argv`` with a heartbeat file just written in place of ``HEARTBEAT``."""
    if "HEARTBEAT" not in argv:
        return argv
    path = Path(tempfile.gettempdir()) / "offload-bench.heartbeat"
    path.write_text("bench")
    return tuple(str(path) if part == "HEARTBEAT" else part for part in argv)


def _time(argv: tuple[str, ...], repeat: int) -> tuple[list[float], int]:
    from django.core.management import call_command

    argv = _with_file(argv)

    times, code = [], 0
    for _ in range(repeat):
        begin = time.perf_counter()
        try:
            call_command("offload", *argv, stdout=io.StringIO())
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        times.append((time.perf_counter() - begin) * 1000)
    return times, code


def _process_ms(argv: tuple[str, ...], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one ``python -m django offload *argv``: the
    CPU time is what the machine's other load does not change."""
    argv = _with_file(argv)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    begin = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "django", "offload", *argv],
        env=env, cwd=ROOT, capture_output=True, check=False,
    )  # fmt: skip
    wall = (time.perf_counter() - begin) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def _explain(argv: tuple[str, ...]) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured, contextlib.suppress(SystemExit):
        call_command("offload", *argv, stdout=io.StringIO())
    prefix = {"postgresql": "EXPLAIN ANALYZE ", "sqlite": "EXPLAIN QUERY PLAN "}.get(
        connection.vendor, "EXPLAIN "
    )
    seen: set[str] = set()
    for query in captured.captured_queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT") or sql in seen:
            continue
        seen.add(sql)
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            plan: list[Any] = cursor.fetchall()
        print(f"\n{sql}")
        for row in plan:
            print("    " + " | ".join(str(cell) for cell in row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    env = {
        **os.environ,
        "OFFLOAD_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    try:
        begin = time.perf_counter()
        _fill(args.tasks)
        took = time.perf_counter() - begin
        print(f"{connection.vendor}: inserted {args.tasks:,} tasks in {took:.1f} s")
        wall, cpu = _process_ms(("--help",), env)
        print(
            f"a process that only starts Django (offload --help): {wall:.0f} ms, {cpu:.0f} ms CPU"
        )
        print(f"{'command':<40} {'exit':>4} {'median ms':>10} {'max ms':>8} "
              f"{'process ms':>11} {'CPU ms':>7}")  # fmt: skip
        for label, argv in VARIANTS.items():
            times, code = _time(argv, args.repeat)
            wall, cpu = _process_ms(argv, env)
            print(
                f"{label:<40} {code:>4} {statistics.median(times):>10.1f} "
                f"{max(times):>8.1f} {wall:>11.0f} {cpu:>7.0f}"
            )
        if args.explain:
            _explain(FULL)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
