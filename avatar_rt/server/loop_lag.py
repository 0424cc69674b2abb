"""How late the event loop runs its callbacks, and (on request) what held it up.

Everything that keeps a session on time is a callback on the one event loop: the frame clock's tick, handing
a frame to aiortc, sending RTP, answering ICE consent. Anything that runs long on the loop thread (a
synchronous fsync, an image decode, a big JSON parse) delays all of them, for every session at once. So
the server measures it all the time: a heartbeat every 10 ms records how late it woke (`/v1/metrics`
`event_loop`: p50/p99/max over the last minute, and since start the count of beats later than 20, 50, 100
and 250 ms). When a beat is late, a watchdog thread (opt-in: `AVATAR_RT_LOOP_STALL_MS=30`) samples the
loop thread's Python stack while it is held and logs, once the loop runs again, for how long and where it
was — the way to find what blocks it, by measurement rather than by guessing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from collections import Counter, deque

import numpy as np

log = logging.getLogger(__name__)

BEAT_S = 0.010
WINDOW_BEATS = 6000  # the last minute at one beat per 10 ms
THRESHOLDS_MS = (20, 50, 100, 250)
STALL_ENV = "AVATAR_RT_LOOP_STALL_MS"


class LoopLag:
    """A heartbeat task on the loop: how late each 10 ms beat woke."""

    def __init__(self) -> None:
        self._lags_ms: deque[float] = deque(maxlen=WINDOW_BEATS)
        self.beats = 0
        self.over = {t: 0 for t in THRESHOLDS_MS}
        self.max_ms = 0.0
        self.last_beat = time.monotonic()  # read by the watchdog thread
        self.loop_thread = threading.get_ident()
        self._task: asyncio.Task | None = None
        self._watchdog: StallWatchdog | None = None

    def start(self) -> None:
        self.loop_thread = threading.get_ident()
        self.last_beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._beat())
        threshold = os.environ.get(STALL_ENV)
        if threshold:
            self._watchdog = StallWatchdog(self, float(threshold) / 1000.0)
            self._watchdog.start()
            log.info("event-loop stall watchdog on: stacks of stalls over %s ms are logged", threshold)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._watchdog is not None:
            self._watchdog.stop()

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(BEAT_S)
            self.record(1000.0 * (loop.time() - before - BEAT_S))
            self.last_beat = time.monotonic()

    def record(self, lag_ms: float) -> None:
        lag_ms = max(0.0, lag_ms)
        self._lags_ms.append(lag_ms)
        self.beats += 1
        self.max_ms = max(self.max_ms, lag_ms)
        for t in THRESHOLDS_MS:
            if lag_ms > t:
                self.over[t] += 1

    def snapshot(self) -> dict:
        recent = np.fromiter(self._lags_ms, dtype=np.float64) if self._lags_ms else np.zeros(1)
        return {
            "lag_ms": {"p50": round(float(np.percentile(recent, 50)), 2),
                       "p99": round(float(np.percentile(recent, 99)), 2),
                       "max": round(float(recent.max()), 2), "window_s": round(len(self._lags_ms) * BEAT_S, 1)},
            "since_start": {"beats": self.beats, **{f"over_{t}ms": n for t, n in self.over.items()},
                            "max_ms": round(self.max_ms, 1)},
        }


def _where(frame, depth: int = 6) -> str:
    """The innermost frames of a stack, innermost last, as `file:line function` (site-packages shortened)."""
    entries = traceback.extract_stack(frame)[-depth:]
    parts = []
    for e in entries:
        name = e.filename.split("site-packages/")[-1].split("/avatar_rt/")[-1]
        parts.append(f"{name}:{e.lineno} {e.name}")
    return " > ".join(parts)


class StallWatchdog(threading.Thread):
    """Samples the loop thread's stack every 5 ms while its heartbeat is overdue; logs each stall once over."""

    def __init__(self, lag: LoopLag, threshold_s: float):
        super().__init__(name="loop-stall-watchdog", daemon=True)
        self.lag = lag
        self.threshold_s = threshold_s
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        samples: Counter[str] = Counter()
        stalled_since: float | None = None
        while not self._stop.wait(0.005):
            overdue = time.monotonic() - self.lag.last_beat - BEAT_S
            if overdue > self.threshold_s:
                if stalled_since is None:
                    stalled_since, samples = self.lag.last_beat + BEAT_S, Counter()
                frame = sys._current_frames().get(self.lag.loop_thread)
                samples[_where(frame) if frame is not None else "(no Python frame)"] += 1
            elif stalled_since is not None:
                held_ms = 1000.0 * (self.lag.last_beat - stalled_since)
                top = "; ".join(f"{n}x {where}" for where, n in samples.most_common(3))
                log.warning("event loop held %.0f ms; loop thread was at: %s", held_ms, top)
                stalled_since = None
