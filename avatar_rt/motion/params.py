"""The motion parameter vector: everything that moves the face acts on these numbers.

Audio (lip sync), idle behaviour, emotions and edits all write here, so they
compose instead of fighting over pixels, and a 3D client can consume the same
stream through the ARKit / viseme maps in `avatar_rt/motion/blendshapes.py`.

`PARAMS` is the one place where every component, its range and its meaning are
written down; docs/motion_params.md is generated from it.
Units: angles in radians; translations in inter-ocular distances (IOD, the
distance between the eye centres of the reference face); everything else is a
unitless amount where 0 is the reference's rest pose.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np


class ParamSpec(NamedTuple):
    name: str
    group: str
    low: float
    high: float
    meaning: str


PARAMS: tuple[ParamSpec, ...] = (
    # Head pose, applied in 3D about a pivot at the top of the neck, then projected.
    ParamSpec("head_yaw", "head", -0.35, 0.35, "turn, rad (±20°, the range a single photo can turn convincingly); + turns the face towards image right"),
    ParamSpec("head_pitch", "head", -0.3, 0.3, "nod, rad (±17°); + tips the chin down"),
    ParamSpec("head_roll", "head", -0.4, 0.4, "tilt, rad; + tilts clockwise in the image"),
    ParamSpec("head_tx", "head", -0.3, 0.3, "shift, IOD; + moves towards image right"),
    ParamSpec("head_ty", "head", -0.3, 0.3, "shift, IOD; + moves down"),
    ParamSpec("head_scale", "head", -0.15, 0.15, "lean in (+) or back (−), relative size change"),
    # Articulation: what speech does.
    ParamSpec("jaw_open", "articulation", 0.0, 1.0, "jaw rotates open; 1 = a wide 'aa'"),
    ParamSpec("lip_spread", "articulation", 0.0, 1.0, "corners pulled apart and back; 'ee'"),
    ParamSpec("lip_round", "articulation", 0.0, 1.0, "lips pushed forward into a small round opening; 'oo', 'w'"),
    ParamSpec("upper_lip_raise", "articulation", 0.0, 1.0, "upper lip lifts off the teeth; 'f' release, snarl"),
    ParamSpec("lower_lip_drop", "articulation", 0.0, 1.0, "lower lip pulls down off the lower teeth; 'sh'"),
    ParamSpec("lip_press", "articulation", 0.0, 1.0, "lips meet and press, closing the mouth even with the jaw ajar; 'p b m'"),
    ParamSpec("teeth_show", "articulation", 0.0, 1.0, "how much of the teeth the open mouth shows (0 = lips cover them)"),
    # Mouth-shape residual: what articulation alone does not explain (style, expression).
    ParamSpec("mouth_corner_lift", "mouth residual", -1.0, 1.0, "corners up (+, smile) or down (−, frown)"),
    ParamSpec("mouth_shift", "mouth residual", -1.0, 1.0, "whole mouth slides towards image right (+) or left (−)"),
    ParamSpec("upper_lip_curl", "mouth residual", -1.0, 1.0, "upper lip rolls out (+) or in (−)"),
    ParamSpec("lower_lip_curl", "mouth residual", -1.0, 1.0, "lower lip rolls out (+, pout) or in (−)"),
    # Eyes.
    ParamSpec("blink_l", "eyes", 0.0, 1.0, "subject's left eyelid (image right) closes; 1 = shut"),
    ParamSpec("blink_r", "eyes", 0.0, 1.0, "subject's right eyelid (image left) closes; 1 = shut"),
    ParamSpec("eye_squint", "eyes", 0.0, 1.0, "lower lids rise, as in a genuine smile"),
    ParamSpec("eye_wide", "eyes", 0.0, 1.0, "upper lids lift, showing more eye white; surprise, fear"),
    ParamSpec("gaze_x", "eyes", -1.0, 1.0, "irises look towards image right (+) or left (−), 1 = a third of the eye width"),
    ParamSpec("gaze_y", "eyes", -1.0, 1.0, "irises look down (+) or up (−)"),
    # Brows.
    ParamSpec("brow_raise_l", "brows", -1.0, 1.0, "subject's left brow up (+) or down (−)"),
    ParamSpec("brow_raise_r", "brows", -1.0, 1.0, "subject's right brow up (+) or down (−)"),
    ParamSpec("brow_inner_raise", "brows", 0.0, 1.0, "inner ends of both brows rise; sadness, worry"),
    ParamSpec("brow_furrow", "brows", 0.0, 1.0, "brows pulled together and down; anger, focus"),
    # Cheeks and nose.
    ParamSpec("cheek_raise", "cheeks", 0.0, 1.0, "cheeks lift and round; smiles"),
    ParamSpec("nose_wrinkle", "cheeks", 0.0, 1.0, "nose wrinkles and nostrils lift; disgust"),
)

PARAM_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS)
PARAM_INDEX: dict[str, int] = {name: i for i, name in enumerate(PARAM_NAMES)}
LOW = np.array([p.low for p in PARAMS], dtype=np.float32)
HIGH = np.array([p.high for p in PARAMS], dtype=np.float32)


@dataclass
class MotionParams:
    """One frame's motion; fields follow `PARAMS` in order, all 0 at rest."""

    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    head_tx: float = 0.0
    head_ty: float = 0.0
    head_scale: float = 0.0
    jaw_open: float = 0.0
    lip_spread: float = 0.0
    lip_round: float = 0.0
    upper_lip_raise: float = 0.0
    lower_lip_drop: float = 0.0
    lip_press: float = 0.0
    teeth_show: float = 0.0
    mouth_corner_lift: float = 0.0
    mouth_shift: float = 0.0
    upper_lip_curl: float = 0.0
    lower_lip_curl: float = 0.0
    blink_l: float = 0.0
    blink_r: float = 0.0
    eye_squint: float = 0.0
    eye_wide: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    brow_raise_l: float = 0.0
    brow_raise_r: float = 0.0
    brow_inner_raise: float = 0.0
    brow_furrow: float = 0.0
    cheek_raise: float = 0.0
    nose_wrinkle: float = 0.0

    def to_vector(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in PARAM_NAMES], dtype=np.float32)

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> MotionParams:
        if len(vector) != len(PARAM_NAMES):
            raise ValueError(f"a motion vector has {len(PARAM_NAMES)} components, got {len(vector)}")
        return cls(**{name: float(v) for name, v in zip(PARAM_NAMES, vector)})

    def clipped(self) -> MotionParams:
        """Every component inside its documented range (NaN becomes rest)."""
        v = np.nan_to_num(self.to_vector(), nan=0.0, posinf=0.0, neginf=0.0)
        return MotionParams.from_vector(np.clip(v, LOW, HIGH))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return PARAM_NAMES


assert tuple(f.name for f in fields(MotionParams)) == PARAM_NAMES, "MotionParams fields must follow PARAMS"


def markdown_table() -> str:
    """The parameter table for the docs (docs/motion_params.md is this, regenerated)."""
    rows = ["| # | name | group | range | meaning |", "|---|---|---|---|---|"]
    for i, p in enumerate(PARAMS):
        rows.append(f"| {i} | `{p.name}` | {p.group} | {p.low:g} … {p.high:g} | {p.meaning} |")
    return "\n".join(rows)
