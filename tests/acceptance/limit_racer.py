"""One racer of test_limit_race: enqueues a task of the same concurrency key
as its peers, at once.

Run as ``python -m tests.acceptance.limit_racer GO_FILE INDEX``: it sets up
Django, says "ready", waits for GO_FILE to appear (the barrier), enqueues
``tasks.call_partner`` (key "partner-api", limit 2) and prints the id it got.
Even racers enqueue inside a transaction, odd ones in autocommit.
"""

import os
import sys
import time

import django


def main() -> None:
    go_file, index = sys.argv[1], int(sys.argv[2])
    django.setup()
    from django.db import transaction

    from tests.app import tasks

    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.001)
    if index % 2:
        result = tasks.call_partner.enqueue(index)
    else:
        with transaction.atomic():
            result = tasks.call_partner.enqueue(index)
    print(f"id {result.id}", flush=True)


if __name__ == "__main__":
    main()
