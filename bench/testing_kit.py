"""How long offload.testing takes to enqueue, run and read back one task, in
one transaction as inside a TestCase. Not a test: a figure for docs/testing.md.

    uv run python -m bench.testing_kit [--db sqlite|postgres|mariadb] [--rounds 300]

Uses the test suite's settings (tests/settings.py) and its own test database.
"""

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres", "mariadb"])
    parser.add_argument("--rounds", type=int, default=300)
    options = parser.parse_args()
    os.environ["OFFLOAD_TEST_DB"] = options.db
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import get_runner
    from tests.app.tasks import add

    from offload.testing import OffloadTasks

    runner = get_runner(settings)(verbosity=0)
    old = runner.setup_databases()
    try:
        kit = OffloadTasks()
        timings = []
        with transaction.atomic():  # as a TestCase does
            for round_ in range(options.rounds):
                begun = time.perf_counter()
                result = add.enqueue(round_, 1)
                [done] = kit.run()
                assert add.get_result(result.id).return_value == round_ + 1 == done.return_value
                timings.append((time.perf_counter() - begun) * 1000)
            transaction.set_rollback(True)
        timings.sort()
        print(
            f"{options.db} ({connection.vendor}): enqueue + run + read back, "
            f"{options.rounds} rounds: median {statistics.median(timings):.2f} ms, "
            f"p90 {timings[int(len(timings) * 0.9)]:.2f} ms, max {timings[-1]:.2f} ms"
        )
    finally:
        runner.teardown_databases(old)


if __name__ == "__main__":
    main()
