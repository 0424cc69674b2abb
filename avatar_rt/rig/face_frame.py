"""The face's own coordinate frame: where the rig's deformations are defined.

Origin between the eye centres, x from the subject's right eye to the left one
(image right), y down the face, z away from the camera (MediaPipe's sign), unit
one inter-ocular distance (IOD). Every deformation is written in this frame, so
the same numbers move a large face and a small one, a tilted face and a level
one, alike; the frame maps them back to the reference's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatar_rt.avatar import landmarks as lm


@dataclass(frozen=True)
class FaceFrame:
    origin: np.ndarray  # (3,) pixels
    axes: np.ndarray  # (3, 3): columns are the frame's x, y, z in pixel space
    iod: float

    @classmethod
    def fit(cls, points: np.ndarray) -> FaceFrame:
        p = points.astype(np.float64)
        right, left = lm.eye_centers(p)
        origin = (right + left) / 2
        ex = left - right
        iod = float(np.linalg.norm(ex[:2]))
        ex /= np.linalg.norm(ex)
        down = p[lm.CHIN] - origin
        ey = down - (down @ ex) * ex
        ey /= np.linalg.norm(ey)
        ez = np.cross(ex, ey)
        return cls(origin=origin, axes=np.stack([ex, ey, ez], axis=1), iod=iod)

    def to_face(self, points: np.ndarray) -> np.ndarray:
        """Pixels (n, 3) → face frame (n, 3), in IOD."""
        return (points - self.origin) @ self.axes / self.iod

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Face frame (n, 3) → pixels (n, 3)."""
        return self.origin + self.iod * points @ self.axes.T

    def vectors_to_pixels(self, vectors: np.ndarray) -> np.ndarray:
        return self.iod * vectors @ self.axes.T
