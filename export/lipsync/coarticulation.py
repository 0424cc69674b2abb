"""Coarticulation: timed ARPAbet phonemes → articulation targets and viseme labels per 10 ms hop.

A Cohen–Massaro dominance model. Each phoneme has a target shape (7 articulation
values, `ARTICULATION` order) and, per dimension, a dominance: how strongly it
claims that dimension. The dominance is flat over the middle of the segment and
decays exponentially away from it; vowels decay slower *before* their centre than
after (they are anticipated across the consonants before them) and lip rounding
spreads furthest of all. The trajectory is the dominance-weighted mean of the
targets, so a /t/ between two rounded vowels keeps the lips rounded (it barely
claims the lips), while a /p/ claims lip press so strongly that it always closes.

Hard constraints then hold where the acoustics leave no doubt: during every P/B/M
segment (exact synthesizer times, never jittered) lip_press = 1, the teeth are
hidden and the jaw nearly closed, eased in and out just outside the segment.

Each utterance draws a speaker style (ranges of jaw, spreading, rounding, teeth;
overall strength; how far dominance reaches; anticipation; smoothing; a small lead
of the lips over the sound; timing jitter of a few ms), so the target is a
distribution, not one curve. The style vector is returned for analysis.

Viseme labels are exact: the viseme of the phoneme under each hop's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from export.lipsync import phonemes as ph

HOP_S = 0.01  # targets per 10 ms hop; hop k's value is taken at its centre, (k + 0.5) * 10 ms
HOP_SAMPLES = 160
ARTICULATION = ("jaw_open", "lip_spread", "lip_round", "upper_lip_raise", "lower_lip_drop", "lip_press", "teeth_show")
JAW, SPREAD, ROUND, RAISE, DROP, PRESS, TEETH = range(7)
_DT = 0.001  # the model runs on a 1 ms grid, then is sampled at hop centres

# Target shapes, ARTICULATION order. Consonant and vowel shapes follow the viseme
# shapes in avatar_rt/edits/speech_style.py, refined per phoneme.
_T = {
    "sil": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "P": (0.05, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "F": (0.1, 0.1, 0.0, 0.25, 0.1, 0.0, 0.6),  # lower lip to the upper teeth: teeth show, lip pulled
    "TH": (0.25, 0.1, 0.0, 0.05, 0.0, 0.0, 0.6),
    "T": (0.3, 0.15, 0.0, 0.0, 0.0, 0.0, 0.4),
    "N": (0.25, 0.1, 0.0, 0.0, 0.0, 0.0, 0.3),
    "L": (0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.35),
    "K": (0.35, 0.1, 0.0, 0.0, 0.0, 0.0, 0.3),
    "HH": (0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2),
    "SH": (0.2, 0.0, 0.6, 0.1, 0.3, 0.0, 0.5),
    "S": (0.15, 0.5, 0.0, 0.0, 0.0, 0.0, 0.7),
    "R": (0.25, 0.0, 0.6, 0.0, 0.0, 0.0, 0.2),
    "ER": (0.3, 0.0, 0.45, 0.0, 0.0, 0.0, 0.25),
    "W": (0.15, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0),
    "Y": (0.2, 0.7, 0.0, 0.0, 0.0, 0.0, 0.4),
    "AA": (0.8, 0.1, 0.0, 0.0, 0.0, 0.0, 0.4),
    "AE": (0.65, 0.4, 0.0, 0.1, 0.0, 0.0, 0.5),
    "AH": (0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.35),
    "AO": (0.6, 0.0, 0.5, 0.0, 0.0, 0.0, 0.2),
    "EH": (0.45, 0.55, 0.0, 0.0, 0.0, 0.0, 0.5),
    "IH": (0.3, 0.65, 0.0, 0.0, 0.0, 0.0, 0.5),
    "IY": (0.2, 0.85, 0.0, 0.0, 0.0, 0.0, 0.5),
    "UH": (0.25, 0.0, 0.65, 0.0, 0.0, 0.0, 0.1),
    "UW": (0.15, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0),
    "OW0": (0.5, 0.0, 0.6, 0.0, 0.0, 0.0, 0.2),  # start of the OW glide
}
_SAME = {"B": "P", "M": "P", "V": "F", "DH": "TH", "D": "T", "G": "K", "NG": "K",
         "CH": "SH", "JH": "SH", "ZH": "SH", "Z": "S"}
# Diphthongs glide from a first to a second shape (labels stay one viseme).
_GLIDES = {"AY": ("AA", "IH"), "AW": ("AA", "UH"), "EY": ("EH", "IY"), "OW": ("OW0", "UW"), "OY": ("AO", "IY")}

# Dominance magnitude per dimension (ARTICULATION order) by phoneme class.
_ALPHA_VOWEL = (1.0,) * 7
_ALPHA = {
    "sil": (0.8,) * 7,
    "P": (1.0, 0.6, 0.3, 1.0, 1.0, 4.0, 2.0),  # owns the press; keeps the vowel's rounding ("boot")
    "F": (2.0, 0.5, 0.3, 5.0, 5.0, 1.0, 5.0),
    "TH": (1.0, 0.3, 0.3, 1.0, 1.0, 1.0, 2.0),
    "T": (0.8, 0.15, 0.15, 0.3, 0.3, 1.0, 0.5),  # tongue sounds barely claim the lips
    "N": (0.8, 0.15, 0.15, 0.3, 0.3, 1.0, 0.5),
    "L": (0.8, 0.15, 0.15, 0.3, 0.3, 1.0, 0.5),
    "K": (0.8, 0.15, 0.15, 0.3, 0.3, 1.0, 0.5),
    "HH": (0.05,) * 7,  # takes the next vowel's shape
    "SH": (1.5, 1.0, 2.0, 1.0, 2.0, 1.0, 1.5),
    "S": (1.5, 1.5, 0.3, 1.0, 1.0, 1.0, 2.0),
    "R": (0.8, 0.5, 1.2, 0.5, 0.5, 1.0, 0.5),
    "ER": (1.0, 0.8, 1.2, 0.8, 0.8, 1.0, 0.8),
    "W": (1.5, 1.0, 5.0, 1.0, 1.0, 1.0, 1.0),
    "Y": (0.8, 1.5, 0.5, 0.5, 0.5, 1.0, 0.5),
}
# How far each dimension's dominance reaches (rounding is anticipated furthest).
_REACH = np.array([1.0, 1.0, 1.6, 1.0, 1.0, 0.5, 1.0])

STYLE_RANGES: dict[str, tuple[float, float]] = {
    "jaw_scale": (0.75, 1.15),
    "spread_scale": (0.7, 1.2),
    "round_scale": (0.7, 1.15),
    "teeth_scale": (0.6, 1.2),
    "strength": (0.8, 1.1),  # all but lip press: hypo- to hyper-articulation
    "coarticulation": (0.7, 1.4),  # multiplies every dominance reach
    "anticipation": (1.2, 2.0),  # vowels reach this much further before their centre than after
    "smoothing_ms": (6.0, 20.0),  # Gaussian smoothing of the trajectory (muscle inertia)
    "lead_ms": (0.0, 15.0),  # the mouth moves slightly before the sound it makes
    "jitter_ms": (0.0, 5.0),  # std of per-boundary timing jitter of the articulation
}
STYLE_KEYS: tuple[str, ...] = tuple(STYLE_RANGES)


def mean_style() -> np.ndarray:
    """The middle of every style range, without timing jitter: the one deterministic trajectory that best stands
    for the distribution (benchmarks use it to separate model error from the style draw)."""
    style = np.array([(lo + hi) / 2 for lo, hi in STYLE_RANGES.values()], dtype=np.float32)
    style[STYLE_KEYS.index("jitter_ms")] = 0.0
    return style


def sample_style(rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.uniform(lo, hi) for lo, hi in STYLE_RANGES.values()], dtype=np.float32)


def frame_count(n_samples: int) -> int:
    """Hops in an utterance of `n_samples` 16 kHz samples (whole hops only)."""
    return n_samples // HOP_SAMPLES


@dataclass
class Targets:
    articulation: np.ndarray  # (f, 7) float32 in [0, 1]
    visemes: np.ndarray  # (f,) int8, `phonemes.VISEMES` index
    style: np.ndarray  # (len(STYLE_KEYS),) float32


def _key(p: str) -> str:
    return _SAME.get(p, p)


def _articulatory_segments(phonemes, starts, ends):
    """(target, alpha, is_vowel, start, end) per articulatory segment; a diphthong becomes two."""
    out = []
    for p, s, e in zip(phonemes, starts, ends):
        vowel = p in ph.VOWELS
        alpha = np.array(_ALPHA_VOWEL if vowel else _ALPHA[_key(p)])
        if p in _GLIDES:
            mid = s + 0.5 * (e - s)
            for shape, a, b in zip(_GLIDES[p], (s, mid), (mid, e)):
                out.append((np.array(_T[shape]), alpha, True, a, b))
        else:
            out.append((np.array(_T[_key(p)]), alpha, vowel, s, e))
    return out


def _trajectory(segs, t: np.ndarray, style: dict[str, float]) -> np.ndarray:
    """Dominance-weighted blend of the segment targets at times `t` (a uniform grid) → (len(t), 7)."""
    num = np.zeros((len(t), 7))
    den = np.full((len(t), 7), 1e-6)  # an empty stretch stays at rest (0)
    for target, alpha, vowel, s, e in segs:
        centre, half = 0.5 * (s + e), 0.3 * (e - s)  # flat over the middle 60 %
        after = (0.045 if vowel else 0.02) * style["coarticulation"]  # seconds
        before = after * (style["anticipation"] if vowel else 1.0)
        # Beyond 12 decay constants a dominance is below 1e-5 of its peak: skip it.
        lo, hi = np.searchsorted(t, [s - 12 * before * _REACH.max(), e + 12 * after * _REACH.max()])
        d = t[lo:hi] - centre
        dist = np.maximum(np.abs(d) - half, 0.0)
        tau = np.where(d < 0, before, after)[:, None] * _REACH[None, :]
        dom = alpha[None, :] * np.exp(-dist[:, None] / tau)
        num[lo:hi] += dom * target[None, :]
        den[lo:hi] += dom
    return num / den


def viseme_labels(phonemes, starts, ends, n_frames: int) -> np.ndarray:
    centres = (np.arange(n_frames) + 0.5) * HOP_S
    idx = np.clip(np.searchsorted(np.asarray(ends), centres, side="right"), 0, len(phonemes) - 1)
    table = np.array([ph.viseme_index(p) for p in phonemes], dtype=np.int8)
    return table[idx]


def targets(phonemes, starts, ends, n_frames: int, rng: np.random.Generator,
            style: np.ndarray | None = None) -> Targets:
    """Articulation targets and viseme labels for `n_frames` hops (see `frame_count`)."""
    style = sample_style(rng) if style is None else np.asarray(style, dtype=np.float32)
    st = dict(zip(STYLE_KEYS, map(float, style)))
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)

    # The articulation's own timing: a small lead over the sound, and per-boundary jitter.
    bounds = np.append(starts, ends[-1]) - st["lead_ms"] / 1000
    inner = bounds[1:-1] + rng.normal(0.0, st["jitter_ms"] / 1000, len(bounds) - 2)
    d = np.diff(bounds)
    # A boundary moves at most 45 % into either neighbour, so every segment keeps >= 10 % of itself.
    bounds[1:-1] = np.clip(inner, bounds[1:-1] - 0.45 * d[:-1], bounds[1:-1] + 0.45 * d[1:])
    segs = _articulatory_segments(phonemes, bounds[:-1], bounds[1:])

    t = np.arange(0.0, max(n_frames * HOP_S, 1e-3), _DT)
    x = _trajectory(segs, t, st)
    gains = np.array([st["jaw_scale"], st["spread_scale"], st["round_scale"], 1.0, 1.0, 1.0, st["teeth_scale"]])
    gains[[JAW, SPREAD, ROUND, RAISE, DROP, TEETH]] *= st["strength"]
    x = np.clip(gaussian_filter1d(x * gains, st["smoothing_ms"] / 1000 / _DT, axis=0, mode="nearest"), 0.0, 1.0)

    # Bilabial closures, on the exact acoustic segments: held inside, eased in over
    # 20 ms before (the lips close as the closure approaches) and out over 10 ms after
    # (the release is a fast burst), so the trajectory stays continuous.
    hold = np.zeros(len(t))
    for p, s, e in zip(phonemes, starts, ends):
        if _key(p) == "P":
            ramp = np.minimum(np.clip((t - (s - 0.02)) / 0.02, 0, 1), np.clip((e + 0.01 - t) / 0.01, 0, 1))
            hold = np.maximum(hold, np.where((t >= s) & (t < e), 1.0, ramp))
    x[:, PRESS] += hold * (1.0 - x[:, PRESS])
    x[:, TEETH] *= 1.0 - hold
    x[:, JAW] += hold * (np.minimum(x[:, JAW], 0.15) - x[:, JAW])

    centres = np.clip(np.round((np.arange(n_frames) + 0.5) * HOP_S / _DT).astype(int), 0, len(t) - 1)
    return Targets(x[centres].astype(np.float32), viseme_labels(phonemes, starts, ends, n_frames), style)
