"""Accessories worn on the head, drawn per frame where the head is: glasses.

The glasses are a small 3D wireframe in the face frame (lenses in front of the
eyes, temples running back to the ears), projected each frame with the head's
pose, so they turn, nod and tilt with it and show parallax. They are drawn after
the face: lens tint first, then the rims, anti-aliased.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar_rt.rig.landmark_rig import LandmarkRig, RigPose

RIM_BGR = (32, 30, 34)
LENS_SEGMENTS = 28


def _glasses_geometry(eye_z: float) -> dict[str, np.ndarray]:
    """Face-frame points (IOD units): two lens outlines, a bridge, two temples."""
    t = np.linspace(0, 2 * np.pi, LENS_SEGMENTS, endpoint=False)
    front = eye_z - 0.35  # in front of the eyes
    lenses = []
    for cx in (-0.5, 0.5):
        # A soft rectangle: superellipse with exponent 4.
        x = cx + 0.3 * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.5
        y = 0.04 + 0.21 * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.5
        lenses.append(np.stack([x, y, np.full_like(x, front)], axis=1))
    bridge = np.array([[-0.2, -0.02, front], [-0.1, -0.07, front - 0.02], [0.1, -0.07, front - 0.02],
                       [0.2, -0.02, front]])
    temples = [np.array([[s * 0.8, -0.02, front], [s * 0.85, -0.02, front + 0.3], [s * 0.9, 0.0, front + 0.9]])
               for s in (-1, 1)]
    return {"lens_r": lenses[0], "lens_l": lenses[1], "bridge": bridge, "temple_r": temples[0],
            "temple_l": temples[1]}


class Glasses:
    def __init__(self, rig: LandmarkRig):
        self.rig = rig
        eye_z = float(rig.face[[33, 133, 362, 263], 2].mean())
        self.parts = _glasses_geometry(eye_z)
        self.thickness = max(1, int(round(0.026 * rig.iod)))

    def draw(self, frame: np.ndarray, pose: RigPose, opacity: float = 1.0) -> None:
        if opacity <= 0.01:
            return
        projected = {name: self.rig.wear(points, pose) for name, points in self.parts.items()}
        layer = frame.copy()
        for lens in ("lens_r", "lens_l"):
            poly = np.round(projected[lens] * 16).astype(np.int32)
            tint = layer.copy()
            cv2.fillPoly(tint, [poly], (60, 55, 50), cv2.LINE_AA, shift=4)
            cv2.addWeighted(tint, 0.12, layer, 0.88, 0, dst=layer)
        for name, pts in projected.items():
            closed = name.startswith("lens")
            cv2.polylines(layer, [np.round(pts * 16).astype(np.int32)], closed, RIM_BGR, self.thickness,
                          cv2.LINE_AA, shift=4)
        cv2.addWeighted(layer, opacity, frame, 1.0 - opacity, 0, dst=frame)
