"""Lip-audio alignment controls (PC-Talk's LAC, in motion space).

* Lip scale: the articulation is multiplied by a factor, fixed or following the
  loudness of the voice (louder speech, bigger mouth). Lip press is left alone:
  a closure stays a closure at any scale.
* Word/viseme-level style: the articulation is projected onto each viseme's
  direction (its target shape) and that component alone is scaled, so a rounder
  "oo" or a wider "ee" changes those sounds and barely touches others.
"""

from __future__ import annotations

import numpy as np

from avatar_rt.motion.params import HIGH, LOW, PARAM_INDEX

ARTICULATION = ("jaw_open", "lip_spread", "lip_round", "upper_lip_raise", "lower_lip_drop", "lip_press", "teeth_show")
_IDX = np.array([PARAM_INDEX[n] for n in ARTICULATION])
_SCALED = np.array([PARAM_INDEX[n] for n in ARTICULATION if n != "lip_press"])

# The shape each viseme makes, in ARTICULATION order (its direction in articulation space).
VISEME_SHAPES: dict[str, tuple[float, ...]] = {
    "PP": (0.05, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "FF": (0.1, 0.1, 0.0, 0.2, 0.0, 0.0, 0.6),
    "TH": (0.25, 0.1, 0.0, 0.0, 0.0, 0.0, 0.6),
    "DD": (0.3, 0.15, 0.0, 0.0, 0.0, 0.0, 0.4),
    "kk": (0.35, 0.1, 0.0, 0.0, 0.0, 0.0, 0.3),
    "CH": (0.2, 0.0, 0.6, 0.0, 0.0, 0.0, 0.5),
    "SS": (0.15, 0.5, 0.0, 0.0, 0.0, 0.0, 0.7),
    "nn": (0.25, 0.1, 0.0, 0.0, 0.0, 0.0, 0.3),
    "RR": (0.25, 0.0, 0.6, 0.0, 0.0, 0.0, 0.2),
    "aa": (0.85, 0.1, 0.0, 0.0, 0.0, 0.0, 0.4),
    "E": (0.45, 0.6, 0.0, 0.0, 0.0, 0.0, 0.5),
    "ih": (0.3, 0.8, 0.0, 0.0, 0.0, 0.0, 0.5),
    "oh": (0.55, 0.0, 0.6, 0.0, 0.0, 0.0, 0.2),
    "ou": (0.2, 0.0, 0.95, 0.0, 0.0, 0.0, 0.0),
}
_DIRECTIONS = {v: np.array(s, dtype=np.float32) / np.linalg.norm(s) for v, s in VISEME_SHAPES.items()}


def loudness_scale(level_db: float, *, quiet_db: float = -40.0, loud_db: float = -12.0,
                   low: float = 0.7, high: float = 1.3) -> float:
    """Lip scale from loudness: `low` for quiet speech up to `high` for loud."""
    t = float(np.clip((level_db - quiet_db) / (loud_db - quiet_db), 0.0, 1.0))
    return low + t * (high - low)


def apply_style(vector: np.ndarray, lip_scale: float, viseme_scales: dict[str, float]) -> np.ndarray:
    """Scaled articulation (a new vector; other parameters untouched), clipped to the ranges."""
    out = vector.copy()
    art = out[_IDX].copy()
    for viseme, scale in viseme_scales.items():
        if scale == 1.0:
            continue
        u = _DIRECTIONS[viseme]
        component = max(0.0, float(art @ u))
        # Only the part of the motion that points along this viseme's shape.
        share = component / (float(np.linalg.norm(art)) + 1e-6)
        art = art + (scale - 1.0) * component * u * share
    out[_IDX] = art
    out[_SCALED] *= lip_scale
    return np.clip(out, LOW, HIGH)
