"""The motion parameter vector: everything that moves the face acts on this.

This is the vertical slice's subset; the rig issue grows it to the full ~32
numbers (and a table of ranges). Audio, idle behaviour and edits all write here,
so they compose instead of fighting over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class MotionParams:
    # Head pose, small angles in radians and translation in inter-ocular units.
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    head_tx: float = 0.0
    head_ty: float = 0.0
    # Articulation, 0 = rest.
    jaw_open: float = 0.0  # 0..1, 1 = a wide "aa"
    lip_spread: float = 0.0  # -1 (pucker) .. 1 (wide "ee")
    # Eyes, 0 = open, 1 = closed.
    blink_l: float = 0.0
    blink_r: float = 0.0

    def to_vector(self) -> np.ndarray:
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float32)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
