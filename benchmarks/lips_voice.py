"""Lips vs voice from the media alone, and that measurement's own lead (its offline baseline).

The proxy: the mouth signal is the darkness of the mouth box (an open mouth shows its dark interior),
the voice signal the audio's 10 ms envelope; the offset is the shift that maximises their correlation
(±300 ms searched, 10 ms grid; positive = lips after voice).

A proxy is not a clock: a real mouth opens before the sound it makes (the lip sync learned that
anticipation), and darkness and loudness peak at different moments of a syllable. So the same code
is run on an offline render, where frame n shows the audio at n/fps by construction
(avatar_rt.offline.render_frames): what it reports there is the proxy's own lead, to be subtracted
from what it reports on a call.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import av
import numpy as np

RATE = 16_000  # the envelope's sample rate: the engine's voice


def mouth_darkness(frame: av.VideoFrame, box: Sequence[int]) -> float:
    """Minus the mean luma of the mouth box: higher = more open."""
    x0, y0, x1, y1 = box
    return -float(frame.to_ndarray(format="gray")[y0:y1, x0:x1].mean())


def lips_vs_voice(video: list[tuple[float, float]], audio: list[tuple[float, np.ndarray]], t0: float,
                  t1: float) -> dict:
    """Offset (ms) maximising corr(mouth darkness(t), voice envelope(t - offset)) within [t0, t1).

    video: (time the frame is shown, darkness); audio: (time just after the chunk's last sample, int16 mono
    16 kHz chunk) — sample k of a chunk of n is at t - (n - k) / RATE.
    """
    vt = np.array([t for t, _ in video if t0 <= t < t1])
    vm = np.array([m for t, m in video if t0 <= t < t1])
    at, ae = [], []
    for t, pcm in audio:
        if t0 - 1 <= t < t1 + 1:
            for k in range(0, len(pcm), 160):  # 10 ms envelope, stamped at the chunk's centre
                chunk = pcm[k:k + 160].astype(np.float64)
                at.append(t - (len(pcm) - k - 80) / RATE)
                ae.append(np.sqrt(np.mean(chunk * chunk)))
    if len(vt) < 100 or len(at) < 100:
        return {"frames": int(len(vt)), "error": "too little media in the window"}
    at, ae = np.array(at), np.array(ae)
    order = np.argsort(at)
    at, ae = at[order], ae[order]
    grid = np.arange(t0 + 0.5, t1 - 0.5, 0.01)
    mouth = np.interp(grid, vt, vm)
    best, corrs = None, []
    for off_ms in range(-300, 301, 10):
        env = np.interp(grid - off_ms / 1000, at, ae)
        c = float(np.corrcoef(mouth, env)[0, 1])
        corrs.append(c)
        if best is None or c > best[1]:
            best = (off_ms, c)
    return {"offset_ms": best[0], "corr": round(best[1], 3), "corr_at_pm300ms": [round(corrs[0], 3),
                                                                                  round(corrs[-1], 3)],
            "frames": int(len(vt)), "fps": round(len(vt) / (t1 - t0), 1)}


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """int16 mono at `rate` → int16 mono at 16 kHz, as the server's ingress hears it."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.int16)


def baseline_audio(voices: Sequence[tuple[np.ndarray, int]], seconds: float, seed: int) -> np.ndarray:
    """The call's replies back to back with its 1-4 s pauses, at 16 kHz, until `seconds` are filled."""
    rng = random.Random(seed)
    parts, total, i = [], 0, 0
    while total < seconds * RATE:
        pcm, rate = voices[i % len(voices)]
        speech = to_16k(pcm, rate)
        pause = np.zeros(int(rng.uniform(1.0, 4.0) * RATE), np.int16)
        parts += [speech, pause]
        total += len(speech) + len(pause)
        i += 1
    return np.concatenate(parts)


def offline_baseline(portrait, mouth_box: Sequence[int], pcm16k: np.ndarray, fps: float = 25.0) -> dict:
    """The proxy on an offline render of `pcm16k` (aligned by construction): its own lead, in ms.

    Each rendered frame goes through the same BGR → YUV 4:2:0 conversion the server's video track makes,
    and is shown at n/fps; the audio is the same 16 kHz timeline, each sample at its own time.
    """
    from avatar_rt.offline import render_frames

    video: list[tuple[float, float]] = []
    for out in render_frames(portrait, pcm16k, fps=fps):
        frame = av.VideoFrame.from_ndarray(out.image, format="bgr24").reformat(format="yuv420p")
        video.append((out.index / fps, mouth_darkness(frame, mouth_box)))
    chunk = RATE // 50
    audio = [((k + len(pcm16k[k:k + chunk])) / RATE, pcm16k[k:k + chunk]) for k in range(0, len(pcm16k), chunk)]
    return lips_vs_voice(video, audio, 0.0, len(video) / fps)
