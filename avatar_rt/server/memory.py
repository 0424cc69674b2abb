"""Giving memory back to the system after sessions close (glibc malloc; a no-op elsewhere).

Each thread that allocates gets its own malloc arena (up to 8 × cores of them); a session's render thread,
aiortc's codec threads and ONNX Runtime's pools spread the same few megabytes of frames over many arenas,
and freed chunks stay mapped in them. Capping the arenas and trimming after a session closes keeps RSS
near the level of the first sessions instead of creeping up with every one. (The arena cap is here for
experiments; the server only trims: see limit_arenas.)
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt parameter number
_libc = None


def _glibc():
    global _libc
    if os.environ.get("AVATAR_RT_MEMORY_RELEASE") == "0":  # benchmarks/session_memory.py's "before" run
        return None
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim  # glibc only
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def limit_arenas(count: int = 2) -> bool:
    """Cap malloc arenas for threads created from now on (MALLOC_ARENA_MAX set before start does the same).

    Not called by the server: with 2 arenas the render, codec and event-loop threads contend for malloc's
    locks, and a loopback call ran 8–12 fps against main's 13–21 fps side by side on the loaded dev box;
    trimming after sessions close alone keeps RSS flat (benchmarks/session_memory.py)."""
    libc = _glibc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, count))


def trim() -> None:
    """Collect the reference cycles a closed session leaves (aiortc's event handlers hold their peer connection),
    then hand the freed pages back to the system."""
    libc = _glibc()
    if libc:
        gc.collect()
        libc.malloc_trim(0)


_pending: asyncio.TimerHandle | None = None


def trim_soon(delay_s: float = 1.0) -> None:
    """After a session closes: trim once its last frames and tasks are gone (several closes share one trim)."""
    global _pending
    loop = asyncio.get_running_loop()
    if _pending is not None:
        _pending.cancel()
    _pending = loop.call_later(delay_s, lambda: loop.run_in_executor(None, trim))
