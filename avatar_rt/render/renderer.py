"""Portrait renderer: rig pose → a finished frame.

Per frame: the backward map (warp.py) resamples the person layer and its alpha,
which are composited over the still background plate; then the irises go back
in at their gaze, the mouth interior fills the inner-lip contour, and the
eyelids close over the eyes on a blink. Everything else is prepared once per
portrait in the constructor.
"""

from __future__ import annotations

import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import Portrait
from avatar_rt.render import layers
from avatar_rt.render.eyes import EyelidBlink
from avatar_rt.render.iris import IrisLayer
from avatar_rt.render.mouth import DRAWN_TEETH, MouthInterior
from avatar_rt.render.warp import CpuWarpBackend, DenseWarp, WarpBackend
from avatar_rt.rig.landmark_rig import RigPose

_IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)


class PortraitRenderer:
    def __init__(self, portrait: Portrait, drawn_teeth: str = DRAWN_TEETH[0]):
        """`drawn_teeth`: what an opening mouth shows on a photo without teeth of its own (mouth.DRAWN_TEETH)."""
        self.reference = portrait.image
        self.size = portrait.size
        self.rest = portrait.landmarks[:, :2].astype(np.float32)
        iod = portrait.inter_ocular
        chin_y = float(self.rest[lm.CHIN, 1])
        self.warp = DenseWarp(self.rest, self.size, chin_y, iod)
        self.alpha = layers.person_alpha(self.reference)
        self.background = layers.background_plate(self.reference, self.alpha, grow_px=max(2, int(0.12 * iod)))
        self.iris = IrisLayer(self.reference, self.rest)
        self.source = self.iris.plate
        self.backend: WarpBackend = self._warp_backend()
        self.mouth = MouthInterior(self.reference, self.rest, iod, portrait.photo, portrait.photo_landmarks,
                                   drawn_teeth)
        self.eyelids = EyelidBlink(iod, self.size)

    def _warp_backend(self) -> WarpBackend:
        """OpenCV's remap on the CPU backend (faster there than the same warp in ONNX Runtime:
        benchmarks/warp_backends.py); the ONNX warp graph on a GPU backend (`--backend`)."""
        from avatar_rt import engines

        if engines.current().name == "cpu":
            return CpuWarpBackend(self.warp, self.source, self.alpha, self.background)
        from avatar_rt.render.warp_onnx import OnnxWarpBackend

        return OnnxWarpBackend(self.warp, self.source, self.alpha, self.background)

    def _at_rest(self, pose: RigPose) -> bool:
        return (pose.blink_l <= 0.0 and pose.blink_r <= 0.0
                and np.abs(pose.points - self.rest).max() < 1e-3
                and np.abs(pose.head_affine - _IDENTITY).max() < 1e-6)

    def render(self, pose: RigPose) -> np.ndarray:
        if self._at_rest(pose):
            return self.reference.copy()
        frame = self.reference.copy()
        frame[: self.backend.rows] = self.backend.composite(pose.warp_points, pose.head_affine)
        self.iris.composite(frame, pose.warp_points)
        self.mouth.composite(frame, pose.warp_points, pose.upper_teeth, pose.lower_teeth, pose.teeth_show)
        self.eyelids.composite(frame, pose.warp_points, pose.points, pose.blink_r, pose.blink_l)
        return frame
