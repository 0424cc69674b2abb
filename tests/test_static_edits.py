"""Static edits: geometric attributes re-shape the face, appearance edits recolour one region, glasses ride the head."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, detect_faces, load_portrait
from avatar_rt.edits import appearance as looks
from avatar_rt.edits.attributes import GEOMETRIC, bake, bake_static
from avatar_rt.motion.params import MotionParams
from avatar_rt.render.accessories import Glasses
from avatar_rt.render.layers import person_alpha
from avatar_rt.render.renderer import PortraitRenderer
from avatar_rt.rig.landmark_rig import LandmarkRig


@pytest.fixture(scope="module")
def portrait():
    return load_portrait(DEFAULT_PORTRAIT)


def measure(name: str, p: np.ndarray, iod: float) -> float:
    """The documented + direction of each attribute, as a number that grows with it (IOD units)."""
    x, y = p[:, 0], p[:, 1]
    eye_open = ((y[145] - y[159]) + (y[374] - y[386])) / 2
    values = {
        "smile": (y[[13, 14]].mean() - y[[61, 291]].mean()),
        "mouth_width": x[291] - x[61],
        "lip_fullness": (y[17] - y[0]),
        "eye_openness": eye_open,
        "brow_height": -(y[[105, 334]].mean() - y[[159, 386]].mean()),
        "brow_arch": -(y[[105, 334]].mean() - y[[46, 276, 55, 285]].mean()),
        "jaw_chin": y[152] - y[[13, 14]].mean(),
        "face_width": x[[454, 323, 361]].mean() - x[[234, 93, 132]].mean(),
        "nose_width": x[[294, 327, 278]].mean() - x[[64, 98, 48]].mean(),
    }
    return float(values[name] / iod)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_each_attribute_moves_the_redetected_face_monotonically(portrait, name):
    readings = []
    for strength in (-1.0, 0.0, 1.0):
        baked = bake(portrait, {name: strength})
        detected = detect_faces(baked.image[:, :, ::-1])[0][:, :2]
        readings.append(measure(name, detected, portrait.inter_ocular))
    print(name, [round(r, 4) for r in readings])
    assert readings[0] < readings[1] < readings[2], f"{name}: {readings}"


@pytest.mark.parametrize("name, spec", [
    ("lip_colour", {"rgb": [190, 30, 70], "strength": 0.8}),
    ("iris_colour", {"rgb": [40, 120, 200], "strength": 0.9}),
    ("skin_tone", {"rgb": [140, 90, 60], "strength": 0.5}),
    ("hair_colour", {"rgb": [200, 60, 20], "strength": 0.7}),
    ("blush", 0.8),
])
def test_appearance_changes_its_region_and_nothing_else(portrait, name, spec):
    baked = bake_static(portrait, {}, {name: spec})
    alpha = person_alpha(portrait.image) if name == "hair_colour" else None
    mask = looks.region_mask(name, portrait.landmarks, portrait.image.shape[:2], portrait.inter_ocular, alpha)
    changed = np.any(baked.image != portrait.image, axis=2)
    outside = mask <= 1e-3
    assert not changed[outside].any(), f"{name} changed {changed[outside].sum()} pixels outside its region"
    core = mask > 0.8
    assert core.sum() > 20, f"{name}: empty region"
    diff = np.abs(baked.image.astype(int) - portrait.image.astype(int)).sum(axis=2)
    print(name, "pixels in region", int(core.sum()), "mean change", float(diff[core].mean()))
    assert diff[core].mean() > 8, f"{name} barely changed its region"


def test_glasses_follow_the_head(portrait):
    rig = LandmarkRig(portrait)
    renderer = PortraitRenderer(portrait)
    glasses = Glasses(rig)
    centres = {}
    for name, params in (("rest", MotionParams()), ("yaw", MotionParams(head_yaw=0.3)),
                         ("roll", MotionParams(head_roll=0.3))):
        pose = rig.pose(params)
        plain = renderer.render(pose)
        worn = plain.copy()
        glasses.draw(worn, pose)
        drawn = np.argwhere(np.any(worn != plain, axis=2))
        assert len(drawn) > 500, "the glasses were not drawn"
        centres[name] = drawn.mean(axis=0)[::-1]  # (x, y)
        eyes = pose.points[[468, 473]].mean(axis=0)
        assert np.linalg.norm(centres[name] - eyes) < 0.35 * portrait.inter_ocular, "glasses off the eyes"
    assert centres["yaw"][0] - centres["rest"][0] > 0.1 * portrait.inter_ocular  # turned with the head
    roll_pose = rig.pose(MotionParams(head_roll=0.3))
    assert roll_pose.head_rotation[1, 0] > 0.25
