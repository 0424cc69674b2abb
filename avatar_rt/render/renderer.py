"""Portrait renderer: rig pose → a finished frame (warp, mouth interior, eyelids)."""

from __future__ import annotations

import numpy as np

from avatar_rt.avatar.reference import Portrait
from avatar_rt.render.eyes import EyelidBlink
from avatar_rt.render.mouth import MouthInterior
from avatar_rt.render.warp import TriangleWarp
from avatar_rt.rig.landmark_rig import RigPose


class PortraitRenderer:
    """Everything here is prepared once per portrait; `render` is the per-frame work."""

    def __init__(self, portrait: Portrait):
        self.reference = portrait.image
        self.rest = portrait.landmarks[:, :2].astype(np.float32)
        self.warp = TriangleWarp(self.rest, portrait.size)
        self.mouth = MouthInterior(portrait.image, self.rest, portrait.inter_ocular)
        self.eyelids = EyelidBlink(portrait.inter_ocular, portrait.size)

    def render(self, pose: RigPose) -> np.ndarray:
        frame = self.reference.copy()
        self.warp.warp(self.reference, self.rest, pose.warp_points, frame)
        self.mouth.composite(frame, pose.warp_points)
        self.eyelids.composite(frame, pose.warp_points, pose.points, pose.blink_r, pose.blink_l)
        return frame
