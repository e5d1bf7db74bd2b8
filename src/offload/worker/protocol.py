"""What the supervisor and its task processes say to each other.

Each task process gets two pipes. On the control pipe the supervisor writes
single bytes; end of file means the supervisor is gone (even when it was
killed with SIGKILL), and the process gives its tasks back and exits, so no
task process outlives its supervisor. On the status pipe the process writes
short text lines the supervisor aggregates for progress and the final summary.
"""

# Control bytes, supervisor -> task process.
STOP = b"S"  # stop claiming, finish running tasks within the shutdown timeout
FORCE = b"F"  # give every task back now and exit

# Exit codes of a task process, read by the supervisor.
EXIT_OK = 0  # stopped on request, or drained in burst mode
EXIT_RECYCLE = 75  # reached --max-tasks-per-child or --max-memory-per-child: replace me
EXIT_SETUP_FAILED = 78  # configuration error: restarting would fail again


def stats_line(succeeded: int, failed: int, released: int, stale: int) -> bytes:
    return f"stats {succeeded} {failed} {released} {stale}\n".encode()


def parse_stats_line(line: bytes) -> tuple[int, int, int, int] | None:
    parts = line.split()
    if len(parts) != 5 or parts[0] != b"stats":
        return None
    try:
        succeeded, failed, released, stale = (int(p) for p in parts[1:])
    except ValueError:
        return None
    return succeeded, failed, released, stale
