"""Speaker change by WORLD analysis/synthesis: the same words, another voice, exact timings kept.

The lip-sync data has few real speakers (and the synthesizers' voices are few
too); audio augmentation (`augment.py`) changes the *channel* — room, noise,
codec — but every utterance keeps its speaker. This module changes the
*speaker*: WORLD (`pyworld`: DIO + StoneMask F0, CheapTrick spectral envelope,
D4C aperiodicity) splits speech into pitch, envelope and aperiodicity; the
pitch is scaled (a male voice made female-like or the other way), the envelope
and aperiodicity are warped along frequency (a shorter or longer vocal tract:
formants move together, ×0.82–1.22) and the frames are resampled in time (a
faster or slower talker). Resynthesis keeps every phone where it was, times
the rate factor, so the segment times stay exact: a time t becomes t / rate.

About 16× faster than real time on one core (a 1.8 s prompt: 0.11 s), so the
dataset builder applies it once per derived utterance, not per training step.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from export.lipsync.augment import warp_bins

SAMPLE_RATE = 16000
FRAME_MS = 5.0

with warnings.catch_warnings():  # pyworld imports pkg_resources, which warns that it is deprecated
    warnings.simplefilter("ignore")
    import pyworld


@dataclass(frozen=True)
class SpeakerChange:
    f0_scale: float = 1.0  # > 1 raises the pitch
    formant_scale: float = 1.0  # > 1 moves the spectral envelope up (a shorter vocal tract)
    rate: float = 1.0  # > 1 speaks faster (the utterance gets shorter by this factor)
    # Statistical-parametric voices (HTS, flite's clustergen) speak from averaged, smoothed trajectories: their
    # formant transitions and closures are blurred in time. > 0: the log envelope, the aperiodicity and the
    # voiced F0 are low-passed along time with a Hann window this many milliseconds long.
    smooth_ms: float = 0.0

    def tag(self) -> str:
        smooth = f",smooth {self.smooth_ms:.0f} ms" if self.smooth_ms else ""
        return f"world(f0×{self.f0_scale:.2f},fmt×{self.formant_scale:.3f},rate×{self.rate:.2f}{smooth})"


def median_f0(audio: np.ndarray) -> float:
    """Median F0 of the voiced frames (Hz); 0 when nothing is voiced."""
    x = np.asarray(audio, dtype=np.float64)
    f0, _ = pyworld.dio(x, SAMPLE_RATE, frame_period=10.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) else 0.0


# Share of speaker changes that also sound statistical-parametric, and their smoothing (ms). 0 until a full
# training run with it is measured (0.35 is the planned share); at 0 no random number is drawn for it, so the
# dataset of a seed is the one the shipped model trained on.
P_SMOOTH = 0.0
SMOOTH_MS = (15.0, 45.0)


def draw(rng: np.random.Generator, source_f0: float) -> SpeakerChange:
    """A random new speaker for speech whose median pitch is `source_f0`.

    Mostly across the sexes (a low voice goes up, a high one down: that is where the
    voices we lack are), sometimes a nearby voice; the target pitch stays in 75–300 Hz.
    """
    low = source_f0 <= 0 or source_f0 < 165
    kind = rng.random()
    if kind < 0.65:  # across: male-like ↔ female-like
        if low:
            f0, fmt = rng.uniform(1.45, 2.1), rng.uniform(1.08, 1.22)
        else:
            f0, fmt = rng.uniform(0.45, 0.7), rng.uniform(0.82, 0.93)
    else:  # a neighbour of the same sex
        f0, fmt = rng.uniform(0.8, 1.25), rng.uniform(0.93, 1.07)
    if source_f0 > 0:
        f0 = float(np.clip(source_f0 * f0, 75.0, 300.0) / source_f0)
    rate = float(rng.uniform(0.85, 1.2))
    smooth = float(rng.uniform(*SMOOTH_MS)) if P_SMOOTH > 0 and rng.random() < P_SMOOTH else 0.0
    return SpeakerChange(float(f0), float(fmt), rate, smooth)


def _smooth_frames(f0: np.ndarray, sp: np.ndarray, ap: np.ndarray, smooth_ms: float):
    """Low-pass the trajectories along time (a normalised Hann window of `smooth_ms`): the log envelope and the
    aperiodicity everywhere, F0 within each voiced run only (voicing edges stay where they were)."""
    k = int(round(smooth_ms / FRAME_MS)) | 1
    if k < 3 or len(f0) < k:
        return f0, sp, ap
    w = np.hanning(k + 2)[1:-1]
    w /= w.sum()

    def along_time(x: np.ndarray) -> np.ndarray:
        pad = np.pad(x, ((k // 2, k // 2), (0, 0)), mode="edge")
        return np.apply_along_axis(lambda c: np.convolve(c, w, mode="valid"), 0, pad)

    sp = np.exp(along_time(np.log(sp)))
    ap = np.clip(along_time(ap), 0.0, 1.0)
    voiced = f0 > 0
    f0 = f0.copy()
    edges = np.flatnonzero(np.diff(np.r_[0, voiced.astype(np.int8), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        if b - a >= k:
            f0[a:b] = along_time(f0[a:b, None])[:, 0]
    return f0, sp, ap


def _resample_frames(f0: np.ndarray, sp: np.ndarray, ap: np.ndarray, rate: float):
    """Frames taken at positions i·rate: a log-envelope interpolated between neighbours, F0 from the nearer
    frame (interpolated only between two voiced ones, so voicing edges stay sharp)."""
    n = len(f0)
    m = max(1, int(round(n / rate)))
    pos = np.minimum(np.arange(m) * rate, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    sp_new = np.exp(np.log(sp[lo]) * (1 - w) + np.log(sp[hi]) * w)
    ap_new = ap[lo] * (1 - w) + ap[hi] * w
    both = (f0[lo] > 0) & (f0[hi] > 0)
    nearest = np.where(w[:, 0] < 0.5, f0[lo], f0[hi])
    f0_new = np.where(both, f0[lo] * (1 - w[:, 0]) + f0[hi] * w[:, 0], nearest)
    return f0_new, sp_new, ap_new


def apply(audio: np.ndarray, change: SpeakerChange) -> np.ndarray:
    """16 kHz int16 speech spoken by the changed speaker; length round(len / rate)."""
    x = np.asarray(audio, dtype=np.float64)
    n_out = max(1, int(round(len(x) / change.rate)))
    if len(x) < 2 * int(SAMPLE_RATE * FRAME_MS / 1000):
        return np.zeros(n_out, np.int16)
    peak_in = float(np.max(np.abs(x)))
    f0, t = pyworld.dio(x, SAMPLE_RATE, frame_period=FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE)
    sp = np.maximum(warp_bins(sp, change.formant_scale), 1e-16)
    ap = np.clip(warp_bins(ap, change.formant_scale), 0.0, 1.0)
    f0 = f0 * change.f0_scale
    if change.smooth_ms:
        f0, sp, ap = _smooth_frames(f0, sp, ap, change.smooth_ms)
    if change.rate != 1.0:
        f0, sp, ap = _resample_frames(f0, sp, ap, change.rate)
    y = pyworld.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                           SAMPLE_RATE, FRAME_MS)
    y = np.nan_to_num(y)[:n_out]
    y = np.pad(y, (0, n_out - len(y)))
    peak_out = float(np.max(np.abs(y)))
    if peak_out > 0 and peak_in > 0:
        y *= min(peak_in / peak_out, 32000.0 / peak_out)  # the source's level, never clipped
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def retime(starts: np.ndarray, ends: np.ndarray, n_samples: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Segment times for the changed speech: t / rate, the last end on the new duration (so they still tile)."""
    s = np.asarray(starts, dtype=np.float64) / rate
    e = np.asarray(ends, dtype=np.float64) / rate
    e = np.append(s[1:], n_samples / SAMPLE_RATE) if len(s) else e
    if len(s):
        s[0] = 0.0
    return s, e
