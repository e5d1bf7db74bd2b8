"""How much memory this process holds now, for --max-memory-per-child."""

import os
import resource
import sys


def resident_bytes() -> int | None:
    """The resident set size now; the peak where the current one cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes, Linux and the BSDs kilobytes.
    return int(peak if sys.platform == "darwin" else peak * 1024) or None
