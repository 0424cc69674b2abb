"""Rolling per-session measurements: fps, latency by stage, drops."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from avatar_rt.pipeline import FrameTimings

WINDOW = 250  # frames: ten seconds at 25 fps


def _pcts(values: deque[float], *qs: int) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in qs}
    arr = np.fromiter(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in qs}


class SessionMetrics:
    def __init__(self) -> None:
        self.frames_sent = 0
        self.frames_dropped = 0
        self._sent_at: deque[float] = deque(maxlen=WINDOW)
        self._latency_ms: deque[float] = deque(maxlen=WINDOW)
        self._render_ms: deque[float] = deque(maxlen=WINDOW)
        self._queue_ms: deque[float] = deque(maxlen=WINDOW)
        self.speech = False

    def frame_sent(self, timings: FrameTimings) -> None:
        now = time.monotonic() if timings.sent is None else timings.sent
        self.frames_sent += 1
        self._sent_at.append(now)
        self._render_ms.append(1000.0 * (timings.render_done - timings.motion_done))
        self._queue_ms.append(1000.0 * (now - timings.render_done))
        if timings.audio_arrival is not None:
            self._latency_ms.append(1000.0 * (now - timings.audio_arrival))

    def fps(self, window_s: float = 2.0) -> float:
        now = time.monotonic()
        recent = [t for t in self._sent_at if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        return round((len(recent) - 1) / max(1e-6, recent[-1] - recent[0]), 2)

    def snapshot(self) -> dict:
        return {
            "fps": self.fps(),
            "frames": self.frames_sent,
            "dropped_frames": self.frames_dropped,
            "speech": self.speech,
            "latency_ms": _pcts(self._latency_ms, 50, 95),
            "render_ms": _pcts(self._render_ms, 50, 99),
            "queue_ms": _pcts(self._queue_ms, 50, 95),
        }
