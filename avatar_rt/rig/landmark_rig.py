"""The slice's rig: motion params → 2D positions of the reference's 478 landmarks.

Weights are derived from the reference's own geometry (where the mouth corners,
chin and face edges are), so the same params move any face sensibly. The rig
issue replaces this with a 3D rig on MediaPipe's canonical face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import Portrait
from avatar_rt.motion.params import MotionParams

JAW_DROP_IOD = 0.32  # full jaw_open lowers the lower lip by this many inter-ocular distances
SPREAD_IOD = 0.10  # full lip_spread moves each mouth corner outward this far


@dataclass(frozen=True)
class RigPose:
    """Where the landmarks are in this frame."""

    points: np.ndarray  # (478, 2) float32, with eyelids closed by blinks
    warp_points: np.ndarray  # (478, 2) float32, the same without eyelid closure (the warp leaves eyes to the lid layer)
    blink_r: float
    blink_l: float
    jaw_open: float


class LandmarkRig:
    def __init__(self, portrait: Portrait):
        p = portrait.landmarks.astype(np.float32)
        self.rest = p[:, :2].copy()
        self.iod = portrait.inter_ocular
        corners = p[list(lm.MOUTH_CORNERS), :2]
        corner_y = float(corners[:, 1].mean())
        oval = p[list(lm.FACE_OVAL), :2]
        cx = float(p[lm.NOSE_TIP, 0])
        half_width = max(1.0, float(oval[:, 0].max() - oval[:, 0].min()) / 2)
        # Jaw: everything below the mouth-corner line drops, fully a little
        # below it, fading out towards the jaw angles near the ears.
        below = np.clip((p[:, 1] - corner_y + 0.05 * self.iod) / (0.15 * self.iod), 0.0, 1.0)
        across = np.clip((1.0 - np.abs(p[:, 0] - cx) / half_width) / 0.5, 0.0, 1.0)
        self._jaw_w = (below * across).astype(np.float32)
        self._jaw_w[lm.NUM_FACE_LANDMARKS:] = 0.0  # irises stay with the skull
        # Spread: each corner pulls its neighbourhood outward.
        spread = np.zeros_like(self.rest)
        for idx in lm.MOUTH_CORNERS:
            sign = 1.0 if p[idx, 0] > cx else -1.0
            d2 = np.sum((self.rest - self.rest[idx]) ** 2, axis=1)
            spread[:, 0] += sign * np.exp(-d2 / (2 * (0.35 * self.iod) ** 2))
        self._spread = spread.astype(np.float32)
        self._depth = (p[:, 2] - p[:, 2].mean()).astype(np.float32)
        self._pivot = np.array([cx, float(p[lm.CHIN, 1]) + 0.6 * self.iod], dtype=np.float32)
        self._lid_pairs = [
            (np.array(lm.RIGHT_EYE_UPPER[1:-1]), np.array(lm.RIGHT_EYE_LOWER[1:-1]), "r"),
            (np.array(lm.LEFT_EYE_UPPER[1:-1]), np.array(lm.LEFT_EYE_LOWER[1:-1]), "l"),
        ]

    def pose(self, params: MotionParams) -> RigPose:
        pts = self.rest.copy()
        pts[:, 1] += params.jaw_open * JAW_DROP_IOD * self.iod * self._jaw_w
        pts += params.lip_spread * SPREAD_IOD * self.iod * self._spread
        # Head pose: small rotations; yaw and pitch shift points by their depth.
        rel = pts - self._pivot
        c, s = np.cos(params.head_roll), np.sin(params.head_roll)
        rel = rel @ np.array([[c, s], [-s, c]], dtype=np.float32)
        rel[:, 0] -= params.head_yaw * self._depth
        rel[:, 1] -= params.head_pitch * self._depth
        warp_points = rel + self._pivot
        warp_points += np.array([params.head_tx, params.head_ty], dtype=np.float32) * self.iod
        points = warp_points.copy()
        for upper, lower, side in self._lid_pairs:
            blink = params.blink_r if side == "r" else params.blink_l
            if blink > 0:
                points[upper] += blink * (points[lower] - points[upper])
        return RigPose(points=points.astype(np.float32), warp_points=warp_points.astype(np.float32),
                       blink_r=params.blink_r, blink_l=params.blink_l, jaw_open=params.jaw_open)
