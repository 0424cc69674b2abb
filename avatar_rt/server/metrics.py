"""Rolling per-session measurements: fps, latency by stage, drops.

Stages, in the order a sample of speech passes through them (all wall-clock ms, one value per frame
except ingress, which is per received audio packet):

  ingress    RTP packet arrival → decoded 16 kHz chunk in the jitter buffer (aiortc's own audio
             jitter buffer, Opus decode, resampling)
  jitter     the newest sample of the frame's audio decoded → taken by the frame clock (our jitter buffer and
             the wait for the tick; the clock is phase-locked to the arrivals: server/frame_phase.py)
  lookahead  taken by the clock → its frame comes out of the motion model (the model's future context)
  motion     VAD, features, motion model, idle behaviour and edits for the frame
  rig        motion parameters → 3D landmarks
  render     warp, mouth, composite
  convert    BGR → YUV 4:2:0 encoder-ready frame
  queue      waiting for the transport to take the frame
  encode     VP8 encode, packetize and send (the transport asks for the next frame when done)
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from avatar_rt.pipeline import FrameTimings

WINDOW = 250  # frames: ten seconds at 25 fps
STAGES = ("ingress", "jitter", "lookahead", "motion", "rig", "render", "convert", "queue", "encode")


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
        self._stages: dict[str, deque[float]] = {s: deque(maxlen=WINDOW) for s in STAGES}
        self._to_encoded_ms: deque[float] = deque(maxlen=WINDOW)
        self.speech = False

    def packet_decoded(self, packet_arrival: float, decoded: float) -> None:
        """One received audio packet reached the jitter buffer."""
        self._stages["ingress"].append(1000.0 * (decoded - packet_arrival))

    def frame_sent(self, timings: FrameTimings) -> None:
        now = time.monotonic() if timings.sent is None else timings.sent
        self.frames_sent += 1
        self._sent_at.append(now)
        self._render_ms.append(1000.0 * (timings.render_done - timings.motion_done))
        self._queue_ms.append(1000.0 * (now - timings.render_done))
        if timings.audio_arrival is not None:
            self._latency_ms.append(1000.0 * (now - timings.audio_arrival))

    def frame_encoded(self, timings: FrameTimings) -> None:
        """The transport encoded and sent the frame: every stage of it is known now."""
        stamps = {
            "jitter": (timings.audio_arrival, timings.consumed),
            "lookahead": (timings.consumed, timings.tick),
            "motion": (timings.tick, timings.motion_done),
            "rig": (timings.motion_done, timings.rig_done),
            "render": (timings.rig_done, timings.render_done),
            "convert": (timings.render_done, timings.converted),
            "queue": (timings.converted, timings.sent),
            "encode": (timings.sent, timings.encoded),
        }
        for stage, (start, end) in stamps.items():
            if start is not None and end is not None:
                self._stages[stage].append(1000.0 * (end - start))
        if timings.audio_arrival is not None and timings.encoded is not None:
            self._to_encoded_ms.append(1000.0 * (timings.encoded - timings.audio_arrival))

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
            # Decoded audio arrival → frame encoded and sent, and each stage of it (ingress precedes "arrival").
            "encoded_latency_ms": _pcts(self._to_encoded_ms, 50, 95, 99),
            "stages_ms": {stage: _pcts(values, 50, 95, 99) for stage, values in self._stages.items()},
        }
