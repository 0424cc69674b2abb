"""Per-parameter displacement bases, built once per avatar in its face frame.

Most parameters are linear: a few *handle* landmarks (the lip contour, a brow)
get an explicit displacement in IOD, and the skin around them follows with a
smooth falloff (inverse-distance blend of the handles, faded to zero at
`radius`), so the whole face stays one surface. Some landmarks can be *pinned*
(zero displacement) so that, say, raising a brow does not drag the lid edge.
The jaw (a rotation) and lip press (lips meeting wherever the jaw is) are not
linear and live in the rig itself.
"""

from __future__ import annotations

import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.motion.params import PARAM_INDEX, PARAM_NAMES

UPPER_OUTER = np.array(lm.LIPS_OUTER_UPPER[1:-1])
LOWER_OUTER = np.array(lm.LIPS_OUTER_LOWER[1:-1])
UPPER_INNER = np.array(lm.LIPS_INNER_UPPER[1:-1])
LOWER_INNER = np.array(lm.LIPS_INNER_LOWER[1:-1])
CORNERS = np.array([61, 291, 78, 308])
ALL_LIPS = np.unique(np.concatenate([UPPER_OUTER, LOWER_OUTER, UPPER_INNER, LOWER_INNER, CORNERS]))
EYE_CONTOURS = np.unique(np.array(lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER))
RIGHT_BROW = np.array([70, 63, 105, 66, 107, 46, 53, 52, 65, 55])  # subject's right: image left
LEFT_BROW = np.array([300, 293, 334, 296, 336, 276, 283, 282, 295, 285])
RIGHT_BROW_INNER = np.array([107, 55, 66, 65])
LEFT_BROW_INNER = np.array([336, 285, 296, 295])
RIGHT_CHEEK = np.array([50, 101, 118, 117, 123, 187, 205, 36, 142])
LEFT_CHEEK = np.array([280, 330, 347, 346, 352, 411, 425, 266, 371])
NOSE_SIDES = np.array([64, 98, 129, 49, 48, 219, 294, 327, 358, 279, 278, 439])
IRISES = np.arange(468, 478)
RIGHT_IRIS = np.arange(468, 473)
LEFT_IRIS = np.arange(473, 478)
# Lid pairs (upper, lower), corners excluded, in matching order along each eye.
RIGHT_LIDS = (np.array(lm.RIGHT_EYE_UPPER[1:-1]), np.array(lm.RIGHT_EYE_LOWER[1:-1]))
LEFT_LIDS = (np.array(lm.LEFT_EYE_UPPER[1:-1]), np.array(lm.LEFT_EYE_LOWER[1:-1]))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def spread(face: np.ndarray, handles: np.ndarray, disp: np.ndarray, radius: float,
           pinned: np.ndarray | None = None) -> np.ndarray:
    """Displace `handles` by `disp` (n, 3) and let every other landmark follow with a falloff."""
    handles = np.asarray(handles)
    disp = np.broadcast_to(np.asarray(disp, dtype=np.float64), (len(handles), 3))
    if pinned is not None and len(pinned):
        keep = ~np.isin(pinned, handles)
        handles = np.concatenate([handles, pinned[keep]])
        disp = np.concatenate([disp, np.zeros((int(keep.sum()), 3))])
    d = np.linalg.norm(face[:, None, :2] - face[None, handles, :2], axis=-1)
    w = 1.0 / (d**2 + 1e-6)
    blended = (w @ disp) / w.sum(axis=1, keepdims=True)
    moving = np.abs(disp).sum(axis=1) > 0
    reach = d[:, moving].min(axis=1) if moving.any() else np.full(len(face), np.inf)
    out = blended * _smoothstep(1.0 - reach / radius)[:, None]
    out[handles] = disp
    return out


class RigBasis:
    """B[k] is the (478, 3) face-frame displacement of parameter k at value 1."""

    def __init__(self, face: np.ndarray):
        self.face = face
        n = len(face)
        self.B = np.zeros((len(PARAM_NAMES), n, 3), dtype=np.float64)
        mc = face[[61, 291]].mean(axis=0)
        mw = max(1e-3, float(np.linalg.norm(face[291, :2] - face[61, :2])) / 2)
        rel = (face[:, 0] - mc[0]) / mw  # -1 at the image-left corner, +1 at the right

        def put(name: str, handles, disp, radius: float, pinned=None) -> None:
            self.B[PARAM_INDEX[name]] = spread(face, np.asarray(handles), disp, radius, pinned)

        def lips_disp(idx, fn) -> np.ndarray:
            return np.stack([fn(i) for i in idx])

        # Articulation.
        put("lip_spread", ALL_LIPS, lips_disp(ALL_LIPS, lambda i: (
            0.12 * rel[i], 0.015 * (1 if i in UPPER_OUTER else -1 if i in LOWER_OUTER else 0), 0.04 * rel[i] ** 2)),
            0.4)
        put("lip_round", ALL_LIPS, lips_disp(ALL_LIPS, lambda i: (
            -0.38 * mw * rel[i],
            -0.025 if i in UPPER_OUTER else 0.025 if i in LOWER_OUTER else -0.02 if i in UPPER_INNER
            else 0.03 if i in LOWER_INNER else 0.0,
            -0.06)), 0.35)
        upper = np.concatenate([UPPER_OUTER, UPPER_INNER])
        lower = np.concatenate([LOWER_OUTER, LOWER_INNER])
        put("upper_lip_raise", upper, lips_disp(upper, lambda i: (0, -0.07 * (1 - 0.6 * abs(rel[i])), 0)), 0.25)
        put("lower_lip_drop", lower, lips_disp(lower, lambda i: (0, 0.07 * (1 - 0.6 * abs(rel[i])), 0)), 0.2)
        both = np.concatenate([upper, lower])
        put("teeth_show", both, lips_disp(both, lambda i: (0, -0.025 if i in upper else 0.025, 0)), 0.2)
        # Mouth residual.
        put("mouth_corner_lift", CORNERS, lips_disp(CORNERS, lambda i: (0.03 * np.sign(rel[i]), -0.13, 0)), 0.45)
        put("mouth_shift", ALL_LIPS, (0.10, 0, 0), 0.4)
        put("upper_lip_curl", UPPER_OUTER, lips_disp(UPPER_OUTER, lambda i: (0, -0.03 * (1 - 0.5 * abs(rel[i])), -0.03)),
            0.15)
        put("lower_lip_curl", LOWER_OUTER, lips_disp(LOWER_OUTER, lambda i: (0, 0.035 * (1 - 0.5 * abs(rel[i])), -0.03)),
            0.15)
        # Eyes: lids move by a fraction of each eye's own opening.
        lid_up, lid_low = [], []
        for up, low in (RIGHT_LIDS, LEFT_LIDS):
            h = np.maximum(face[low, 1] - face[up, 1], 0.02)[:, None]
            lid_up.append((up, h))
            lid_low.append((low, h))
        up_idx = np.concatenate([u for u, _ in lid_up])
        up_h = np.concatenate([h for _, h in lid_up])
        low_idx = np.concatenate([lo for lo, _ in lid_low])
        low_h = np.concatenate([h for _, h in lid_low])
        zeros = np.zeros_like(up_h)
        squint_handles = np.concatenate([low_idx, up_idx])
        squint_disp = np.concatenate([np.hstack([zeros, -0.35 * low_h, zeros]), np.hstack([zeros, 0.1 * up_h, zeros])])
        put("eye_squint", squint_handles, squint_disp, 0.15)
        put("eye_wide", np.concatenate([up_idx, low_idx]),
            np.concatenate([np.hstack([zeros, -0.3 * up_h, zeros]), np.zeros((len(low_idx), 3))]), 0.25)
        # Gaze moves the irises only; the renderer draws them inside the eye opening.
        eye_w = float(np.linalg.norm(face[133, :2] - face[33, :2]) + np.linalg.norm(face[263, :2] - face[362, :2])) / 2
        self.B[PARAM_INDEX["gaze_x"], IRISES, 0] = eye_w / 3
        self.B[PARAM_INDEX["gaze_y"], IRISES, 1] = eye_w / 6
        # Brows, with the eye contours pinned so the lid edges stay put.
        put("brow_raise_r", RIGHT_BROW, (0, -0.12, 0), 0.45, EYE_CONTOURS)
        put("brow_raise_l", LEFT_BROW, (0, -0.12, 0), 0.45, EYE_CONTOURS)
        inner = np.concatenate([RIGHT_BROW_INNER, LEFT_BROW_INNER])
        put("brow_inner_raise", inner, np.array([(0, -0.13 if k % 4 < 2 else -0.08, 0) for k in range(len(inner))]),
            0.35, EYE_CONTOURS)
        put("brow_furrow", inner, np.array([(0.06 if k < 4 else -0.06, 0.05, 0) for k in range(len(inner))]),
            0.3, EYE_CONTOURS)
        # Cheeks and nose.
        cheeks = np.concatenate([RIGHT_CHEEK, LEFT_CHEEK, low_idx])
        put("cheek_raise", cheeks, np.concatenate([np.tile((0, -0.06, -0.02), (len(RIGHT_CHEEK) * 2, 1)),
                                                   np.hstack([zeros, -0.2 * low_h, zeros])]), 0.35)
        upper_mid = np.array([0, 37, 267])
        put("nose_wrinkle", np.concatenate([NOSE_SIDES, upper_mid]),
            np.concatenate([np.tile((0, -0.04, 0), (len(NOSE_SIDES), 1)), np.tile((0, -0.015, 0), (3, 1))]), 0.25)
        # Irises never move with the skin around them; only gaze moves them.
        for name in PARAM_NAMES:
            if name not in ("gaze_x", "gaze_y"):
                self.B[PARAM_INDEX[name], IRISES] = 0.0
        self._flat = self.B.reshape(len(PARAM_NAMES), -1).T.copy()  # (478*3, K)

    def displacement(self, vector: np.ndarray) -> np.ndarray:
        """Σ_k v_k · B_k, as (478, 3) in the face frame."""
        return (self._flat @ vector.astype(np.float64)).reshape(-1, 3)
