"""The server process's own CPU time and memory, for /v1/metrics (a load client divides them by sessions)."""

from __future__ import annotations

import os
import resource
import time


def process_stats() -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = None
    try:  # current RSS; ru_maxrss is only the peak
        with open("/proc/self/statm") as f:
            rss_mb = round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),  # user + system, all threads
        "rss_mb": rss_mb,
        "monotonic_s": round(time.monotonic(), 3),  # to turn two cpu_s readings into cores
        "cpu_count": os.cpu_count(),
    }
