"""Time the admin's pages on a table of 100,000 tasks, at the server.

    OFFLOAD_TEST_DB=sqlite|postgres|mariadb python -m bench.admin_list [--tasks N] [--repeat K]

Uses the test settings (``tests.settings``) and a fresh test database of its
own, created and dropped here. The rows are spread over states, queues, task
paths and the last day; each page is requested through Django's test client
(no network, no browser), so the figure is the server's work: the queries,
the template, the response. The target is under 300 ms for the task list.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "task list": "/admin/offload/taskrecord/",
    "task list, page 50": "/admin/offload/taskrecord/?p=50",
    "failed tasks": "/admin/offload/failedtask/",
    "scheduled tasks": "/admin/offload/scheduledtask/",
    "filter: queue": "/admin/offload/taskrecord/?queue=emails",
    "filter: task path": "/admin/offload/taskrecord/?task=bench.tasks.t3",
    "filter: path prefix": "/admin/offload/taskrecord/?task=bench.tasks.t1*",
    "filter: finished 1h": "/admin/offload/taskrecord/?finished=1h",
    "search: id": "/admin/offload/taskrecord/?q=4242",
    "task detail": "/admin/offload/taskrecord/4242/change/",
    "queues": "/admin/offload/queue/",
    "dashboard data (hour)": "/admin/offload/dashboard/data/?window=hour",
    "dashboard data (day)": "/admin/offload/dashboard/data/?window=day",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from offload.models import TaskRecord
    from offload.states import State

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        rng = random.Random(7)
        now = timezone.now()
        states = (
            [State.SUCCESSFUL] * 85 + [State.FAILED] * 5 + [State.READY] * 8 + [State.RUNNING] * 2
        )
        started = time.perf_counter()
        batch: list[TaskRecord] = []
        for i in range(args.tasks):
            status = rng.choice(states)
            enqueued = now - timedelta(seconds=rng.uniform(0, 86_400))
            done = status in (State.SUCCESSFUL, State.FAILED)
            ran = enqueued + timedelta(seconds=0.05) if status != State.READY else None
            error = {"exception_class_path": "builtins.ValueError", "traceback": "boom\n" * 20,
                     "attempt": 1, "worker_id": "w", "at": now.isoformat()}  # fmt: skip
            # A quarter of the ready tasks wait for a run_after up to a day ahead.
            due = enqueued
            if status == State.READY and rng.random() < 0.25:
                due = now + timedelta(seconds=rng.uniform(60, 86_400))
            batch.append(
                TaskRecord(
                    task_path=f"bench.tasks.t{i % 20}",
                    backend="default",
                    queue_name=rng.choice(["default", "emails", "reports"]),
                    status=status,
                    available_at=due,
                    run_after=due if due > now else None,
                    enqueued_at=enqueued,
                    started_at=ran,
                    last_attempted_at=ran,
                    finished_at=enqueued + timedelta(seconds=0.2) if done else None,
                    attempt=0 if status == State.READY else 1,
                    args=[i, "x" * 50],
                    kwargs={"token": "secret", "n": i},
                    errors=[error] if status == State.FAILED else [],
                )
            )  # fmt: skip
            if len(batch) == 5000:
                TaskRecord.objects.bulk_create(batch)
                batch = []
        TaskRecord.objects.bulk_create(batch)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE offload_task")
        elif connection.vendor == "mysql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE TABLE offload_task")
                cursor.fetchall()
        took = time.perf_counter() - started
        print(f"{connection.vendor}: inserted {args.tasks:,} tasks in {took:.1f} s")

        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="-"))
        print(f"{'page':<24} {'first ms':>9} {'median ms':>10} {'max ms':>8}")
        for label, url in PAGES.items():
            begin = time.perf_counter()
            client.get(url)  # the first request also fills the dashboard's minute cache
            first = (time.perf_counter() - begin) * 1000
            times = []
            for _ in range(args.repeat):
                begin = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - begin) * 1000)
                assert response.status_code == 200, (url, response.status_code)
            median = statistics.median(times)
            print(f"{label:<24} {first:>9.1f} {median:>10.1f} {max(times):>8.1f}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
