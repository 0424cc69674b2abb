"""Synthetic speaker behaviour: what the head, brows and eyelids do while a person talks.

Stage B of the lip sync learns the *distribution* of this behaviour given the speech
(through stage A's outputs), so every utterance of the dataset gets a freshly drawn
trajectory here, at the behaviour rate (25 Hz, `FPS`). The rules follow what the
literature reports about conversational non-verbal behaviour, in simplified form:

* head motion is larger while speaking than while listening, and drifts slowly
  (an Ornstein–Uhlenbeck process per axis, time constant ~1 s, smoothed over ~100 ms:
  a head has inertia);
* nods (chin down, then back) and brow raises come on pitch accents: here, the
  loudest vowels of a phrase, starting a few tens of ms before the vowel;
* a new phrase often starts with a small turn of the head to a new direction;
* blinks come irregularly (about 10–30 per minute), more often at the start of a
  pause, and last 150–400 ms (a fast close, a slower opening), never two at once.

Each utterance draws a *style*: `motion` (one amplitude for head, nods and brows;
0 = still, 1 = typical, 2 = very animated) and `blink_per_min`. Stage B is
conditioned on the style, so a user can ask for a calmer or livelier avatar
(the edit API's `behaviour.head_motion` and `behaviour.blink_rate`). Everything
else (nod gain, phrase turns, time constants) is drawn per utterance and left for
the model to sample.
"""

from __future__ import annotations

import numpy as np

from export.lipsync import phonemes as ph

FPS = 25.0  # behaviour frames per second; frame k is taken at the centre of hop 4k + 2
HOPS_PER_FRAME = 4
BEHAVIOUR = ("head_yaw", "head_pitch", "head_roll", "brow_raise", "blink")
YAW, PITCH, ROLL, BROW, BLINK = range(len(BEHAVIOUR))
STYLE = ("motion", "blink_per_min")
STYLE_RANGES = {"motion": (0.0, 2.0), "blink_per_min": (0.0, 40.0)}
DEFAULT_STYLE = {"motion": 1.0, "blink_per_min": 17.0}
LIMITS = np.array([0.3, 0.25, 0.2, 1.0, 1.0])  # |value| never exceeds these (rad, rad, rad, 0–1, 0–1)

_PAUSE_S = 0.15  # silences at least this long separate phrases


def frame_time(k: np.ndarray | int) -> np.ndarray:
    """Seconds at the centre of behaviour frame k (the centre of hop 4k + 2)."""
    return (HOPS_PER_FRAME * np.asarray(k, dtype=np.float64) + 2.5) * 0.01


def frames_for_hops(n_hops: int) -> int:
    """Behaviour frames whose hop lies inside `n_hops` hops."""
    return max(0, (n_hops - 3) // HOPS_PER_FRAME + 1) if n_hops >= 3 else 0


def sample_style(rng: np.random.Generator) -> np.ndarray:
    motion = rng.uniform(0.0, 0.3) if rng.random() < 0.1 else rng.uniform(0.3, 1.8)
    blinks = 0.0 if rng.random() < 0.05 else rng.uniform(6.0, 36.0)
    return np.array([motion, blinks], np.float32)


def _speech_segments(phonemes, starts, ends) -> list[tuple[float, float]]:
    """Phrases: runs of non-silent segments separated by silences ≥ _PAUSE_S."""
    out: list[list[float]] = []
    for p, s, e in zip(phonemes, starts, ends):
        if str(p) == ph.SIL:
            continue
        if out and s - out[-1][1] < _PAUSE_S:
            out[-1][1] = float(e)
        else:
            out.append([float(s), float(e)])
    return [(a, b) for a, b in out]


def accents(phonemes, starts, ends, audio: np.ndarray, sample_rate: int = 16000) -> list[tuple[float, float]]:
    """(onset seconds, strength 0.3–1) of the accented vowels: the loud ones of each phrase, ≥ 0.35 s apart."""
    vowels = []
    for p, s, e in zip(phonemes, starts, ends):
        sym = str(p).upper().rstrip("012")
        if sym in ph.VOWELS and e - s >= 0.05:
            seg = np.asarray(audio[int(s * sample_rate):int(e * sample_rate)], dtype=np.float64)
            if len(seg):
                vowels.append((float(s), 10 * np.log10(np.mean(seg ** 2) + 1.0)))
    out: list[tuple[float, float]] = []
    for a, b in _speech_segments(phonemes, starts, ends):
        group = [(s, db) for s, db in vowels if a <= s < b]
        if not group:
            continue
        med = float(np.median([db for _, db in group]))
        cands = sorted(((s, float(np.clip((db - med) / 6.0 + 0.5, 0.3, 1.0))) for s, db in group
                        if db >= med + 1.0 or s == group[0][0]), key=lambda x: -x[1])
        chosen: list[tuple[float, float]] = []
        for s, w in cands:
            if all(abs(s - c) >= 0.35 for c, _ in chosen):
                chosen.append((s, w))
        out += chosen
    return sorted(out)


def _ou(n: int, tau_s: float, sigma: np.ndarray, rng: np.random.Generator, smooth_frames: float = 2.5) -> np.ndarray:
    """A smooth random drift at FPS with (per-frame) stationary std `sigma`: an Ornstein–Uhlenbeck process
    (time constant `tau_s`), Gaussian-smoothed over `smooth_frames` (a head has inertia: a raw OU path is
    jagged from frame to frame) and rescaled so the smoothing keeps its std."""
    a = np.exp(-1.0 / (FPS * tau_s))
    x = np.zeros(n)
    v = rng.normal(0.0, sigma[0] if n else 0.0)
    for k in range(n):
        v = a * v + sigma[k] * np.sqrt(1 - a * a) * rng.normal()
        x[k] = v
    r = int(np.ceil(3 * smooth_frames))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / smooth_frames) ** 2)
    w /= w.sum()
    lags = np.abs(np.arange(-r, r + 1)[:, None] - np.arange(-r, r + 1)[None, :])
    gain = 1.0 / np.sqrt(w @ (a ** lags) @ w)
    if n == 0:
        return x
    return gain * np.convolve(np.pad(x, r, mode="reflect" if n > r else "edge"), w, mode="valid")


def _bump(t: np.ndarray, onset: float, width: float) -> np.ndarray:
    """A raised-cosine bump starting at `onset`, `width` seconds long, peak 1."""
    u = (t - onset) / width
    return np.where((u > 0) & (u < 1), 0.5 - 0.5 * np.cos(2 * np.pi * np.clip(u, 0, 1)), 0.0)


def _blink_curve(t: np.ndarray, onset: float, duration: float) -> np.ndarray:
    """Eyelid closure of one blink, the max over each frame's 40 ms (a blink is never missed between frames)."""
    close = 0.35 * duration
    fine = t[:, None] + np.linspace(-0.02, 0.02, 9)[None, :] - onset
    closing = np.clip(fine / close, 0, 1)
    opening = np.clip(1 - (fine - close) / (duration - close), 0, 1)
    return np.where(fine < close, closing, opening).max(axis=1) * (fine.max(axis=1) > 0)


def behaviour(phonemes, starts, ends, audio: np.ndarray, n_frames: int, rng: np.random.Generator,
              style: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames, len(BEHAVIOUR)) float32 trajectory and the style it was drawn with."""
    style = sample_style(rng) if style is None else np.asarray(style, np.float32)
    motion, per_min = float(style[0]), float(style[1])
    t = frame_time(np.arange(n_frames))
    phrases = _speech_segments(phonemes, starts, ends)
    speaking = np.zeros(n_frames)
    for a, b in phrases:
        speaking[(t >= a - 0.1) & (t < b + 0.2)] = 1.0
    speaking = np.convolve(speaking, np.ones(7) / 7, mode="same")  # ~0.3 s ease in and out

    x = np.zeros((n_frames, len(BEHAVIOUR)))
    x[:, YAW] = _ou(n_frames, rng.uniform(0.6, 1.5), motion * (0.025 + 0.035 * speaking), rng)
    x[:, PITCH] = _ou(n_frames, rng.uniform(0.5, 1.2), motion * (0.012 + 0.012 * speaking), rng)
    x[:, ROLL] = _ou(n_frames, rng.uniform(1.0, 2.0), motion * (0.01 + 0.01 * speaking), rng)
    # A phrase may start with a small turn to a new direction, held (smoothly) until the next.
    offset = np.zeros(n_frames)
    for a, _ in phrases:
        if rng.random() < 0.5:
            offset[t >= a - 0.05] = rng.normal(0.0, 0.05 * motion)
    x[:, YAW] += np.convolve(np.pad(offset, 4, mode="edge"), np.hanning(9) / np.hanning(9).sum(), mode="valid")

    nod_gain, brow_p = rng.uniform(0.3, 1.0), rng.uniform(0.15, 0.6)
    for onset, strength in accents(phonemes, starts, ends, audio):
        x[:, PITCH] += motion * nod_gain * 0.06 * strength * _bump(t, onset - 0.04, rng.uniform(0.3, 0.45))
        if rng.random() < brow_p:
            x[:, BROW] += min(1.0, motion) * 0.7 * strength * _bump(t, onset - 0.06, rng.uniform(0.35, 0.6))

    # Blinks: a Poisson stream (fewer while speaking), plus likely one as a pause begins; ≥ 0.6 s apart.
    duration_total = n_frames / FPS
    events = []
    rate = per_min / 60.0
    if rate > 0:
        s = rng.exponential(1.0 / rate)
        while s < duration_total:
            events.append(s)
            s += rng.exponential(1.0 / rate)
        for _, b in phrases:
            if rng.random() < min(0.8, 0.3 + rate * 0.75):
                events.append(b + rng.uniform(0.05, 0.2))
    # Speech thins the Poisson blinks (people blink less mid-phrase).
    kept: list[float] = []
    for s in sorted(events):
        k = min(n_frames - 1, int(s * FPS)) if n_frames else 0
        if n_frames and speaking[k] > 0.5 and rng.random() < 0.3:
            continue
        if not kept or s - kept[-1] >= 0.6:
            kept.append(s)
    blink_len = rng.uniform(0.15, 0.3)
    for s in kept:
        x[:, BLINK] = np.maximum(x[:, BLINK], _blink_curve(t, s, blink_len * rng.uniform(0.85, 1.3)))
    x[:, BROW] = np.clip(x[:, BROW], 0.0, 1.0)
    x = np.clip(x, -LIMITS, LIMITS)
    return x.astype(np.float32), style
