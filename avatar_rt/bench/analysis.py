"""From a recorded call to numbers: when the mouth moved after each onset, and how smooth the video was."""

from __future__ import annotations

import numpy as np

from avatar_rt.bench.call import CallRecord, ReceivedFrame

PRE_S = 0.5  # the mouth at rest: frames received in the 500 ms before the onset left (still the silence before it)
POST_S = 1.0  # the reaction is looked for within a second
RISE = 0.25  # "moved": the change from rest passes a quarter of its peak above the resting noise
MIN_CHANGE = 2.0  # grey levels: below this peak the mouth did not visibly move at all


def pcts(values, qs=(50, 95, 99)) -> dict[str, float | None]:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(arr):
        return {f"p{q}": None for q in qs} | {"n": 0}
    return {f"p{q}": round(float(np.percentile(arr, q)), 1) for q in qs} | {"n": int(len(arr))}


def _change(frames: list[ReceivedFrame], ref: np.ndarray) -> np.ndarray:
    return np.array([np.abs(f.mouth.astype(np.float32) - ref).mean() for f in frames])


def mouth_reaction(frames: list[ReceivedFrame], onset: float, clock: str = "delivered") -> float | None:
    """Seconds from the onset leaving the client to the first frame whose mouth visibly moved.

    clock "delivered": when aiortc handed the frame over (what an aiortc app shows); "complete": when
    the frame's last packet arrived (the client's own jitter buffer and decoder taken out).
    """
    def at(f: ReceivedFrame) -> float | None:
        return f.delivered if clock == "delivered" else f.complete

    pre = [f for f in frames if onset - PRE_S <= f.delivered <= onset]
    post = [f for f in frames if onset < f.delivered <= onset + POST_S]
    if len(pre) < 2 or len(post) < 3:  # a starved server sends few frames; fewer cannot be judged
        return None
    ref = np.mean([f.mouth.astype(np.float32) for f in pre], axis=0)
    noise = float(_change(pre, ref).max())
    change = _change(post, ref)
    peak = float(change.max())
    if peak - noise < MIN_CHANGE:
        return None
    moved = int(np.argmax(change > noise + RISE * (peak - noise)))
    t = at(post[moved])
    return None if t is None else t - onset


def video_stats(frames: list[ReceivedFrame], fps: float, skip_s: float = 1.0) -> dict:
    """Received fps, frame-interval jitter and frames missing from the pts sequence (after the first second)."""
    if len(frames) < 3:
        return {"frames": len(frames), "fps": 0.0, "interval_ms": pcts([]), "interval_sd_ms": None,
                "missing_frames": None}
    t0 = frames[0].delivered + skip_s
    steady = [f for f in frames if f.delivered >= t0] or frames
    times = np.array([f.delivered for f in steady])
    span = times[-1] - times[0]
    intervals = np.diff(times) * 1000.0
    step = 90000.0 / fps
    pts = np.array([f.pts for f in steady], dtype=np.int64)
    gaps = np.round(np.diff(pts) / step).astype(int)
    return {
        "frames": len(frames),
        "fps": round((len(steady) - 1) / span, 2) if span > 0 else 0.0,
        "interval_ms": pcts(intervals),
        "interval_sd_ms": round(float(intervals.std()), 1) if len(intervals) else None,
        "missing_frames": int(np.clip(gaps - 1, 0, None).sum()),
    }


def analyse_call(record: CallRecord, fps: float) -> dict:
    onsets = record.onset_times()
    delivered = [mouth_reaction(record.frames, t, "delivered") for t in onsets]
    complete = [mouth_reaction(record.frames, t, "complete") for t in onsets]
    first = record.frames[0].delivered - record.answered if record.frames else None
    hold = [f.delivered - f.complete for f in record.frames if f.complete is not None]
    return {
        "session_id": record.session_id,
        "onsets": len(onsets),
        "mouth_ms": [None if v is None else round(1000 * v, 1) for v in delivered],
        "mouth_at_frame_complete_ms": [None if v is None else round(1000 * v, 1) for v in complete],
        "first_frame_s": None if first is None else round(first, 3),
        "client_hold_ms": pcts(1000.0 * np.array(hold)) if hold else pcts([]),
        "video": video_stats(record.frames, fps),
    }
