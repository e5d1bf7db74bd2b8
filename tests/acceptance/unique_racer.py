"""The racers of test_unique_race: COUNT processes enqueue the same unique key at once.

Run as ``python -m tests.acceptance.unique_racer COUNT ON_DUPLICATE``. It sets up Django
once, then forks COUNT processes: each is a process of its own, with its own
database connection (none is open at the fork), at the cost of a fork rather
than of a Python start, so a hundred fit a small machine. The barrier is a
pipe: every racer says it is ready, then blocks reading the pipe, and all of
them wake together when the parent closes its end. Even racers enqueue inside
a transaction, odd ones in autocommit (and with other arguments), each with
ON_DUPLICATE ("existing" or "replace"). Each racer's line, ``id ID`` or
``error ...``, is printed in the order they finished; the exit status is the
number of racers that failed (0 when every one got a result).
"""

import os
import sys
import traceback

import django


def race(index: int, on_duplicate: str, ready_w: int, go_r: int, out_w: int) -> None:
    """One racer, in a forked process: never returns."""
    from django.db import transaction

    from tests.app import tasks

    status = 1
    try:
        os.write(ready_w, b".")
        os.read(go_r, 1)  # end of file once the parent closes the write end: go
        racer = tasks.sync_customer.unique("customer-42", on_duplicate=on_duplicate)
        if index % 2:
            result = racer.enqueue(42, full=True)
        else:
            with transaction.atomic():
                result = racer.enqueue(42)
        line = f"id {result.id}\n"
        status = 0
    except BaseException as exc:  # reported, not raised: this process ends below
        line = f"error {index}: {exc!r} {traceback.format_exc()!r}\n"
    os.write(out_w, line.encode())  # one write under PIPE_BUF: lines never interleave
    os._exit(status)  # not the parent's exit handlers


def main() -> int:
    count, on_duplicate = int(sys.argv[1]), sys.argv[2]
    django.setup()
    from django.db import connections

    import tests.app.tasks  # noqa: F401 (imported once, before the forks)

    connections.close_all()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    children = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            race(index, on_duplicate, ready_w, go_r, out_w)
        children.append(pid)
    os.close(go_r)
    os.close(out_w)
    ready = 0
    while ready < count:
        got = os.read(ready_r, count)
        if not got:
            break
        ready += len(got)
    print(f"ready {ready}", flush=True)
    os.close(go_w)  # go
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    with os.fdopen(out_r) as lines:
        sys.stdout.write(lines.read())
    return failed


if __name__ == "__main__":
    sys.exit(main())
