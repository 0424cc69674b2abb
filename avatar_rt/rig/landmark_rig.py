"""The rig: motion params → 3D positions of the reference's 478 landmarks → projected to pixels.

Order of operations, all in the face frame (see face_frame.py) until the last step:
1. linear deformations: Σ v_k · B_k (lips, lids, brows, cheeks, gaze; basis.py);
2. the jaw: a rotation about a hinge behind the cheeks, weighted so the chin and
   lower lip go fully and the cheeks partly;
3. lip press: inner lips meet at their midline wherever the jaw left them;
4. back to pixels, then head pose in 3D about a pivot at the top of the neck
   (yaw, pitch, roll, lean), translation, and an orthographic projection.
Blinks are reported separately (`points` vs `warp_points`): the renderer draws
the lid over the eye instead of warping pixels across it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import Portrait
from avatar_rt.motion.params import MotionParams
from avatar_rt.rig import basis as bs
from avatar_rt.rig.face_frame import FaceFrame

JAW_MAX_RAD = 0.26  # jaw_open = 1: about a 20 mm opening at the incisors on an adult face
HINGE = np.array([0.0, 0.45, 1.0])  # temporomandibular joint: below the eye line, well behind the face
NECK_PIVOT = np.array([0.0, 2.0, 1.0])  # where the head turns: behind and below the chin


@dataclass(frozen=True)
class RigPose:
    """Where everything is in this frame, in output pixels."""

    points: np.ndarray  # (478, 2) landmarks, eyelids closed by blinks
    warp_points: np.ndarray  # (478, 2) the same without the blinks (the warp leaves lids to the lid layer)
    head_affine: np.ndarray  # (2, 3) the head's rigid motion as a 2D affine, for hair and neck
    upper_teeth: np.ndarray  # (9, 2) edge of the upper teeth: rides with the skull
    lower_teeth: np.ndarray  # (9, 2) edge of the lower teeth: rides with the jaw
    blink_r: float
    blink_l: float
    teeth_show: float
    # The head's rigid motion in pixel space, x ↦ R·(x − pivot) + pivot + t, for things worn on it.
    head_rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    head_translation: np.ndarray = field(default_factory=lambda: np.zeros(3))


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Image axes (x right, y down, z away): + yaw turns the nose to image right, + pitch tips it down,
    + roll turns the face clockwise."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_roll @ r_pitch @ r_yaw


class LandmarkRig:
    def __init__(self, portrait: Portrait):
        points = portrait.landmarks.astype(np.float64)
        self.rest = points[:, :2].astype(np.float32)
        self.frame = FaceFrame.fit(points)
        self.iod = self.frame.iod
        self.face = self.frame.to_face(points)
        self.basis = bs.RigBasis(self.face)
        self._jaw_w = self._jaw_weights(self.face)
        self._bodies = self._lip_bodies(self.face)
        self._pivot = self.frame.to_pixels(NECK_PIVOT[None])[0]
        # Under yaw and pitch the outline must move exactly like the hair around
        # it (a 2D warp cannot show the far cheek being hidden), so depth
        # parallax fades out towards the face outline: the outline turns as a
        # flat card with the hair, the nose and eyes turn in relief inside it.
        rest_pixels = self.frame.to_pixels(self.face)
        oval = list(lm.FACE_OVAL)
        self._card_z = float(rest_pixels[oval, 2].mean())
        outline = rest_pixels[oval, :2].astype(np.float32)
        inside = np.array([cv2.pointPolygonTest(outline, (float(x), float(y)), True)
                           for x, y in rest_pixels[:, :2]])
        t = np.clip(inside / (0.35 * self.iod), 0.0, 1.0)
        self._relief = (t * t * (3 - 2 * t)).astype(np.float64)
        # The 2D affine that hair and neck follow is fitted over the face's outline,
        # which sits at the depth of the hair and ears (the nose, nearer the camera,
        # moves more under yaw: that parallax is left to the face's own warp).
        # The least-squares solve reduces to one precomputed pseudo-inverse.
        rest_flat = self._flatten(self.frame.to_pixels(self.face))
        self._rest_rigid = rest_flat[list(lm.FACE_OVAL)]
        # Teeth edges at rest: the upper set only ever moves with the head, the lower with jaw + head.
        self._teeth_upper = list(lm.LIPS_INNER_UPPER[1:-1])
        self._teeth_lower = list(lm.LIPS_INNER_LOWER[1:-1])
        self._rest_upper_teeth = rest_flat[self._teeth_upper]
        design = np.hstack([self._rest_rigid[:, :2], np.ones((len(lm.FACE_OVAL), 1))])
        self._affine_solver = np.linalg.pinv(design)  # (3, n)

    @staticmethod
    def _jaw_weights(face: np.ndarray) -> np.ndarray:
        """How much of the jaw's rotation each landmark takes: the lower lip and chin all of it,
        the upper lip and everything above it none, the cheeks in between, fading out towards the ears."""
        inner_upper = face[list(lm.LIPS_INNER_UPPER)]
        order = np.argsort(inner_upper[:, 0])
        lip_line = np.interp(face[:, 0], inner_upper[order, 0], inner_upper[order, 1])
        half_width = max(0.5, float(np.abs(face[list(lm.FACE_OVAL), 0]).max()))
        below = np.clip((face[:, 1] - lip_line - 0.02) / 0.14, 0.0, 1.0)
        across = np.clip((1.0 - np.abs(face[:, 0]) / half_width) / 0.5, 0.0, 1.0)
        w = below * across
        w[bs.UPPER_INNER] = 0.0
        w[bs.UPPER_OUTER] = 0.0
        w[bs.LOWER_INNER] = 1.0
        w[bs.LOWER_OUTER] = np.maximum(w[bs.LOWER_OUTER], 0.9)
        w[bs.CORNERS] = 0.5
        w[bs.IRISES] = 0.0
        return w

    def _jaw(self, face: np.ndarray, amount: float, ids: list[int] | None = None) -> np.ndarray:
        """The jaw rotation applied to `face` (all landmarks, or the rows `ids` of it)."""
        if amount == 0.0:
            return face
        theta = amount * JAW_MAX_RAD
        c, s = np.cos(theta), np.sin(theta)
        rel = face - HINGE
        rotated = rel.copy()
        rotated[:, 1] = c * rel[:, 1] - s * rel[:, 2]
        rotated[:, 2] = s * rel[:, 1] + c * rel[:, 2]
        weights = self._jaw_w if ids is None else self._jaw_w[ids]
        return face + weights[:, None] * (rotated + HINGE - face)

    @staticmethod
    def _lip_bodies(face: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The mesh points inside each lip, each with the column of the inner contour nearest it: pressed
        lips move as a whole, not only along their contours (a lip stretched between a moving contour and
        a still middle magnified the line where closed lips meet into a band)."""
        out = []
        for ids, inner in zip(lm.lip_bodies(face), (lm.LIPS_INNER_UPPER, lm.LIPS_INNER_LOWER)):
            cols = face[list(inner[1:-1]), 0]
            nearest = [int(np.argmin(np.abs(cols - face[i, 0]))) for i in ids]
            out.append((np.array(ids, dtype=np.int64), np.array(nearest, dtype=np.int64)))
        return out[0], out[1]

    def _press(self, face: np.ndarray, amount: float) -> np.ndarray:
        if amount <= 0.0:
            return face
        mid = (face[bs.UPPER_INNER, 1] + face[bs.LOWER_INNER, 1]) / 2
        # The inner lips meet (never cross) at their midline; the outer lips come along. They meet in depth
        # too: the jaw swings the lower lip back, and lips at one height but two depths project apart (or
        # across each other) under the face frame's tilt, which left pressed lips 1 px crossed on a tilted head.
        up_shift = amount * np.maximum(mid - face[bs.UPPER_INNER, 1], 0.0)
        low_shift = amount * np.minimum(mid - face[bs.LOWER_INNER, 1], 0.0)
        mid_z = (face[bs.UPPER_INNER, 2] + face[bs.LOWER_INNER, 2]) / 2
        up_z = amount * (mid_z - face[bs.UPPER_INNER, 2])
        low_z = amount * (mid_z - face[bs.LOWER_INNER, 2])
        out = face.copy()
        out[bs.UPPER_INNER, 1] += up_shift
        out[bs.UPPER_OUTER, 1] += up_shift
        out[bs.LOWER_INNER, 1] += low_shift
        out[bs.LOWER_OUTER, 1] += low_shift
        out[bs.UPPER_INNER, 2] += up_z
        out[bs.LOWER_INNER, 2] += low_z
        for (ids, cols), shift in zip(self._bodies, (up_shift, low_shift)):
            if len(ids):
                out[ids, 1] += shift[cols]
        return out

    def _head(self, params: MotionParams) -> tuple[np.ndarray, np.ndarray]:
        """The head's rigid motion in pixels: x ↦ R·s·(x − pivot) + pivot + t."""
        r = rotation(params.head_yaw, params.head_pitch, params.head_roll) * (1.0 + params.head_scale)
        t = np.array([params.head_tx, params.head_ty, 0.0]) * self.iod
        return r, t

    def _flatten(self, pixels: np.ndarray, ids: list[int] | None = None) -> np.ndarray:
        """Depth pulled towards the outline's plane by each landmark's relief (rows `ids`, or all)."""
        relief = self._relief if ids is None else self._relief[ids]
        out = pixels.copy()
        out[:, 2] = self._card_z + (pixels[:, 2] - self._card_z) * relief
        return out

    def _apply_head(self, pixels: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (pixels - self._pivot) @ r.T + self._pivot + t

    def pose(self, params: MotionParams) -> RigPose:
        vector = params.to_vector()
        face = self.face + self.basis.displacement(vector)
        face = self._jaw(face, params.jaw_open)
        face = self._press(face, params.lip_press)
        r, t = self._head(params)
        posed = self._apply_head(self._flatten(self.frame.to_pixels(face)), r, t)
        warp_points = posed[:, :2]
        points = warp_points.copy()
        for (upper, lower), blink in ((bs.RIGHT_LIDS, params.blink_r), (bs.LEFT_LIDS, params.blink_l)):
            if blink > 0:
                points[upper] += blink * (points[lower] - points[upper])
        # Teeth: upper set fixed to the skull, lower set carried by the jaw alone.
        upper_teeth = self._apply_head(self._rest_upper_teeth, r, t)
        ids = self._teeth_lower
        jawed = self._jaw(self.face[ids], params.jaw_open, ids)
        lower_teeth = self._apply_head(self._flatten(self.frame.to_pixels(jawed), ids), r, t)
        # The rigid part of the head's motion as a 2D affine (a projection of a 3D rotation is one, exactly,
        # for points at one depth; fitted over the face it is the best such map).
        moved_rigid = self._apply_head(self._rest_rigid, r, t)
        head_affine = (self._affine_solver @ moved_rigid[:, :2]).T.astype(np.float32)
        return RigPose(points=points.astype(np.float32), warp_points=warp_points.astype(np.float32),
                       head_affine=head_affine, upper_teeth=upper_teeth[:, :2].astype(np.float32),
                       lower_teeth=lower_teeth[:, :2].astype(np.float32), blink_r=params.blink_r,
                       blink_l=params.blink_l, teeth_show=params.teeth_show, head_rotation=r, head_translation=t)

    def wear(self, face_points: np.ndarray, pose: RigPose) -> np.ndarray:
        """Project points fixed to the head (face frame, IOD; e.g. glasses) with this pose's head motion."""
        pixels = self.frame.to_pixels(face_points)
        return ((pixels - self._pivot) @ pose.head_rotation.T + self._pivot + pose.head_translation)[:, :2]
