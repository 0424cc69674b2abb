"""One render worker pool for all sessions, one edit thread, and no BLAS thread pool.

Each session's frame loop awaits its step before asking for the next, so a session never has
two steps in flight and its pipeline needs no lock; the pool only bounds how many sessions
render at once (one per core: more threads than cores only adds switching).

numpy's OpenBLAS starts a thread per core that spins after every call; every matrix on the
frame path is tiny, so that thread did nothing useful and cost 0.4-0.5 cores per live session
on the 2-core VM (measured per thread from /proc during `avatar-rt bench`), more than the
render thread itself. The benchmarks in benchmarks/ always ran single-threaded BLAS, which is
why they never saw it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_edit_pool: ThreadPoolExecutor | None = None


def limit_blas_threads() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # process-wide, stays in effect


def render_pool() -> ThreadPoolExecutor:
    """The process's shared pool for frame steps (created on first use, lives as long as the process)."""
    global _pool
    with _lock:
        if _pool is None:
            limit_blas_threads()
            _pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="render")
        return _pool


def edit_pool() -> ThreadPoolExecutor:
    """One thread for every session's edits: validation, the SQLite commit (an fsync), the text model. Off the
    event loop, and one thread so that edits are applied and acknowledged in the order they arrived."""
    global _edit_pool
    with _lock:
        if _edit_pool is None:
            _edit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edits")
        return _edit_pool
