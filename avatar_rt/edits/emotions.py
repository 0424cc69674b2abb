"""Emotions as pure deformations of the motion vector, region by region.

Each emotion is a set of offsets on the motion parameters at intensity 1, tagged
by the face region it belongs to (mouth, eyes, brows, head), so a user can put a
smile on the mouth and sadness on the brows (PC-Talk's per-region emotion). The
offsets are chosen from the facial action units that express each emotion
(e.g. happiness: cheek raiser + lip-corner puller; sadness: inner-brow raiser +
lip-corner depressor). They deliberately avoid the articulation parameters
(jaw, round, press), and the mouth part yields to speech (see `emotion_delta`),
so lip sync survives any emotion: Δ_emo(audio) = f(audio, emotion) − f(audio, neutral).
"""

from __future__ import annotations

from avatar_rt.motion.params import PARAM_INDEX

import numpy as np

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt")
REGIONS = ("mouth", "eyes", "brows", "head")

REGION_OF = {
    "mouth_corner_lift": "mouth", "mouth_shift": "mouth", "upper_lip_curl": "mouth", "lower_lip_curl": "mouth",
    "lip_spread": "mouth", "upper_lip_raise": "mouth", "lower_lip_drop": "mouth", "nose_wrinkle": "mouth",
    "cheek_raise": "eyes", "eye_squint": "eyes", "eye_wide": "eyes", "gaze_y": "eyes",
    "brow_raise_l": "brows", "brow_raise_r": "brows", "brow_inner_raise": "brows", "brow_furrow": "brows",
    "head_pitch": "head", "head_roll": "head", "head_yaw": "head",
}

# Offsets at intensity 1.
_TABLE: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouth_corner_lift": 0.8, "lip_spread": 0.25, "cheek_raise": 0.7, "eye_squint": 0.35,
              "lower_lip_curl": 0.1},
    "sad": {"mouth_corner_lift": -0.7, "lower_lip_curl": 0.35, "brow_inner_raise": 0.9, "brow_raise_l": -0.15,
            "brow_raise_r": -0.15, "eye_squint": 0.1, "gaze_y": 0.25, "head_pitch": 0.06},
    "angry": {"brow_furrow": 0.9, "brow_raise_l": -0.5, "brow_raise_r": -0.5, "eye_squint": 0.4,
              "upper_lip_raise": 0.25, "mouth_corner_lift": -0.3, "nose_wrinkle": 0.3},
    "surprised": {"brow_raise_l": 0.9, "brow_raise_r": 0.9, "brow_inner_raise": 0.4, "eye_wide": 0.9,
                  "lower_lip_drop": 0.2, "head_pitch": -0.04},
    "fearful": {"brow_inner_raise": 0.9, "brow_raise_l": 0.4, "brow_raise_r": 0.4, "brow_furrow": 0.3,
                "eye_wide": 0.8, "lip_spread": 0.4, "mouth_corner_lift": -0.2},
    "disgusted": {"nose_wrinkle": 0.9, "upper_lip_raise": 0.6, "brow_furrow": 0.5, "brow_raise_l": -0.3,
                  "brow_raise_r": -0.3, "eye_squint": 0.4, "mouth_corner_lift": -0.4, "cheek_raise": 0.3},
    "contempt": {"mouth_shift": 0.25, "mouth_corner_lift": 0.2, "upper_lip_curl": -0.2, "eye_squint": 0.2,
                 "head_roll": 0.04, "head_pitch": -0.03},
}

_N = len(PARAM_INDEX)


def _vector(offsets: dict[str, float], region: str | None) -> np.ndarray:
    v = np.zeros(_N, dtype=np.float32)
    for name, value in offsets.items():
        if region is None or REGION_OF[name] == region:
            v[PARAM_INDEX[name]] = value
    return v


# EMOTION_VECTORS[emotion][region] → offsets of that region at intensity 1.
EMOTION_VECTORS = {e: {r: _vector(_TABLE[e], r) for r in REGIONS} for e in EMOTIONS}
assert all(name in REGION_OF for table in _TABLE.values() for name in table)


def mix(weights_by_region: dict[str, dict[str, float]]) -> np.ndarray:
    """Σ over regions and emotions of intensity × that region's offsets."""
    total = np.zeros(_N, dtype=np.float32)
    for region, weights in weights_by_region.items():
        for emotion, intensity in weights.items():
            total += intensity * EMOTION_VECTORS[emotion][region]
    return total


_MOUTH_SHAPE = [PARAM_INDEX[n] for n in ("mouth_corner_lift", "lip_spread", "lower_lip_curl", "upper_lip_curl",
                                         "upper_lip_raise", "lower_lip_drop", "mouth_shift")]


def emotion_delta(base: np.ndarray, static_delta: np.ndarray) -> np.ndarray:
    """The emotion's offsets given this frame's speech motion `base`.

    Speech keeps the mouth: while the lips close (press) or round, the mouth part
    of the emotion gives way, so a smiling "p" still closes and a smiling "oo"
    still rounds.
    """
    press = float(np.clip(base[PARAM_INDEX["lip_press"]], 0.0, 1.0))
    rounding = float(np.clip(base[PARAM_INDEX["lip_round"]], 0.0, 1.0))
    keep = (1.0 - 0.8 * press) * (1.0 - 0.7 * rounding)
    delta = static_delta.copy()
    delta[_MOUTH_SHAPE] *= keep
    return delta
