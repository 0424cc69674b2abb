"""Geometric attributes: directions added to the face's shape with a strength (FaceEditTalker's z′ = z + α·w).

Here the semantic code z is the reference's own landmark geometry in its face
frame, and each attribute w is a displacement of it (the same handle-and-falloff
construction as the rig's bases). Attributes are *static*: when they change, the
portrait is re-baked once — warped to the new shape by the renderer itself — and
every frame after that costs exactly what it cost before.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import Portrait
from avatar_rt.rig import basis as bs
from avatar_rt.rig.face_frame import FaceFrame

GEOMETRIC = ("smile", "mouth_width", "lip_fullness", "eye_openness", "brow_height", "brow_arch", "jaw_chin",
             "face_width", "nose_width")
# What + means for each (− is the opposite); documented in docs/api.md too.
MEANING = {
    "smile": "corners of the mouth up, cheeks lifted (a resting smile)",
    "mouth_width": "a wider mouth",
    "lip_fullness": "fuller lips (outer lip contours move apart)",
    "eye_openness": "more open eyes (lids apart)",
    "brow_height": "higher brows",
    "brow_arch": "more arched brows (middle up, ends still)",
    "jaw_chin": "a longer chin",
    "face_width": "a wider face at the cheeks and jaw",
    "nose_width": "a wider nose",
}
BROW_MIDDLES = np.array([105, 63, 52, 53, 334, 293, 282, 283])
CHIN = np.array([152, 148, 176, 377, 400, 175, 199, 200, 149, 378])
FACE_SIDES = np.array([234, 454, 93, 323, 132, 361, 58, 288, 172, 397, 136, 365, 150, 379])
NOSE_ALAE = np.array([64, 294, 98, 327, 48, 278, 129, 358, 49, 279, 219, 439, 115, 344])


def attribute_bases(face: np.ndarray) -> dict[str, np.ndarray]:
    """(478, 3) face-frame displacement of each attribute at strength 1."""
    mc = face[[61, 291]].mean(axis=0)
    mw = max(1e-3, float(np.linalg.norm(face[291, :2] - face[61, :2])) / 2)
    rel = (face[:, 0] - mc[0]) / mw
    side = np.sign(face[:, 0])  # face frame x: 0 between the eyes
    eyes = bs.EYE_CONTOURS

    def per(ids, fn) -> np.ndarray:
        return np.array([fn(i) for i in ids], dtype=np.float64)

    lid_handles, lid_disp = [], []
    for upper, lower in (bs.RIGHT_LIDS, bs.LEFT_LIDS):
        h = np.maximum(face[lower, 1] - face[upper, 1], 0.02)
        lid_handles += [upper, lower]
        lid_disp += [np.stack([0 * h, -0.25 * h, 0 * h], 1), np.stack([0 * h, 0.1 * h, 0 * h], 1)]
    lids = np.concatenate(lid_handles)
    bases = {
        "smile": bs.spread(face, bs.CORNERS, per(bs.CORNERS, lambda i: (0.02 * np.sign(rel[i]), -0.06, 0)), 0.45),
        "mouth_width": bs.spread(face, bs.ALL_LIPS, per(bs.ALL_LIPS, lambda i: (0.08 * rel[i], 0, 0)), 0.35),
        "lip_fullness": bs.spread(face, np.concatenate([bs.UPPER_OUTER, bs.LOWER_OUTER]),
                                  np.concatenate([per(bs.UPPER_OUTER, lambda i: (0, -0.03 * (1 - 0.5 * abs(rel[i])), 0)),
                                                  per(bs.LOWER_OUTER, lambda i: (0, 0.035 * (1 - 0.5 * abs(rel[i])), 0))]),
                                  0.15, np.concatenate([bs.UPPER_INNER, bs.LOWER_INNER])),
        "eye_openness": bs.spread(face, lids, np.concatenate(lid_disp), 0.2),
        "brow_height": bs.spread(face, np.concatenate([bs.RIGHT_BROW, bs.LEFT_BROW]), (0, -0.08, 0), 0.4, eyes),
        "brow_arch": bs.spread(face, BROW_MIDDLES, (0, -0.05, 0), 0.2,
                               np.concatenate([eyes, [70, 46, 107, 55, 300, 276, 336, 285]])),
        "jaw_chin": bs.spread(face, CHIN, (0, 0.08, 0), 0.5, bs.ALL_LIPS),
        "face_width": bs.spread(face, FACE_SIDES, per(FACE_SIDES, lambda i: (0.07 * side[i], 0, 0)), 0.4,
                                np.concatenate([eyes, bs.ALL_LIPS])),
        "nose_width": bs.spread(face, NOSE_ALAE, per(NOSE_ALAE, lambda i: (0.05 * side[i], 0, 0)), 0.15),
    }
    for b in bases.values():
        b[bs.IRISES] = 0.0
    # The irises ride with their eye's centre when the eye shape changes.
    return bases


def reshaped_landmarks(portrait: Portrait, strengths: dict[str, float]) -> np.ndarray:
    """The portrait's landmarks with the attributes applied, in its pixels (478, 3)."""
    frame = FaceFrame.fit(portrait.landmarks.astype(np.float64))
    face = frame.to_face(portrait.landmarks.astype(np.float64))
    bases = attribute_bases(face)
    moved = face.copy()
    for name, strength in strengths.items():
        moved += strength * bases[name]
    return frame.to_pixels(moved).astype(np.float32)


def bake(portrait: Portrait, strengths: dict[str, float]) -> Portrait:
    """A new portrait whose face has the attributes: the renderer warps the reference to the new shape once."""
    from avatar_rt.render.renderer import PortraitRenderer
    from avatar_rt.rig.landmark_rig import RigPose

    active = {k: v for k, v in strengths.items() if v != 0.0}
    if not active:
        return portrait
    target = reshaped_landmarks(portrait, active)
    points = target[:, :2]
    pose = RigPose(points=points, warp_points=points, head_affine=np.array([[1, 0, 0], [0, 1, 0]], np.float32),
                   upper_teeth=points[list(lm.LIPS_INNER_UPPER[1:-1])], lower_teeth=points[list(lm.LIPS_INNER_LOWER[1:-1])],
                   blink_r=0.0, blink_l=0.0, teeth_show=0.0)
    image = PortraitRenderer(portrait).render(pose)
    return dataclasses.replace(portrait, image=image, landmarks=target)


def bake_static(portrait: Portrait, attributes: dict[str, float], appearance: dict,
                mouth_rest: str = "closed") -> Portrait:
    """The rest mouth first (the photo's own, if asked for), then geometry, then colour on the reshaped face:
    the portrait every frame starts from."""
    from avatar_rt.edits import appearance as looks
    from avatar_rt.render.layers import person_alpha

    if mouth_rest == "photo" and portrait.photo is not None:
        portrait = Portrait(image=portrait.photo, landmarks=portrait.photo_landmarks)
    baked = bake(portrait, attributes)
    if not appearance:
        return baked
    image = baked.image
    shape = image.shape[:2]
    iod = baked.inter_ocular
    alpha = person_alpha(image) if "hair_colour" in appearance else None
    for name, spec in appearance.items():
        mask = looks.region_mask(name, baked.landmarks, shape, iod, alpha)
        if name == "blush":
            image = looks.blush(image, mask, float(spec))
        else:
            image = looks.recolour(image, mask, tuple(spec["rgb"]), float(spec["strength"]))
    return dataclasses.replace(baked, image=image)
