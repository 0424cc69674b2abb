"""Behaviour of the rig + renderer, judged the way a viewer would: by MediaPipe re-detecting the rendered face.

For a handful of parameters, three values across the documented range are
rendered and MediaPipe Face Mesh is run on each frame; the feature the
parameter is documented to move (inner-lip gap, mouth width, eye opening,
nose-tip x, brow height, corner height, iris offset) must move the documented
way, monotonically, by a visible step each time. The full numbers (fidelity in
% IOD, jitter) are `benchmarks/rig_quality.py`'s job; these are the fast checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, detect_faces, load_portrait
from avatar_rt.motion.params import PARAMS, MotionParams
from avatar_rt.render.renderer import PortraitRenderer
from avatar_rt.rig.landmark_rig import LandmarkRig

# Each step between the three tested values must move the feature at least this far (% of IOD).
# MediaPipe's own wobble for a re-rendered frame is ~0.2-0.6 % IOD on a landmark (benchmarks/rig_quality.py).
MIN_STEP_PCT = 1.0
SPECS = {p.name: p for p in PARAMS}
# Subject's left brow (image right) in MediaPipe's mesh: upper edge.
LEFT_BROW_UPPER = (336, 296, 334, 293, 300)
IRIS_CENTERS = (468, 473)  # refined iris centres: subject's right, left

@pytest.fixture(scope="module")
def face():
    portrait = load_portrait(DEFAULT_PORTRAIT)
    return portrait, LandmarkRig(portrait), PortraitRenderer(portrait)


@pytest.fixture(scope="module")
def photo_face():
    """The bundled portrait with its own smile kept (mouth_rest="photo"): lips apart, teeth showing at rest.
    The default rest closes them (tests/test_mouth.py), which leaves lip_press nothing to close on its own."""
    portrait = load_portrait(DEFAULT_PORTRAIT, mouth_rest="photo")
    return portrait, LandmarkRig(portrait), PortraitRenderer(portrait)


def redetect(face, params: MotionParams) -> tuple[np.ndarray, np.ndarray]:
    """(commanded points, re-detected points) for one rendered frame, both (478, 2) in output pixels."""
    _, rig, renderer = face
    pose = rig.pose(params)
    frame = renderer.render(pose)
    faces = detect_faces(np.ascontiguousarray(frame[:, :, ::-1]))
    assert faces, f"MediaPipe finds no face in the frame rendered for {params}"
    return pose.points, faces[0][:, :2]


def three_values(name: str) -> tuple[float, float, float]:
    """Low, rest, high for a two-sided range; rest, half, full for a one-sided one."""
    spec = SPECS[name]
    if spec.low < 0 < spec.high:
        return (spec.low, 0.0, spec.high)
    end = spec.high if spec.high > 0 else spec.low
    return (0.0, end / 2, end)


def eye_opening(points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    return float(np.linalg.norm(points[lower[len(lower) // 2]] - points[upper[len(upper) // 2]]))


# feature(points) -> float; `sign` is the way it must move as the parameter value grows.
FEATURES: dict[str, tuple[Callable[[np.ndarray], float], int, str]] = {
    "jaw_open": (lambda q: float(q[14, 1] - q[13, 1]), +1, "inner-lip gap (13 to 14) widens"),
    "lip_press": (lambda q: float(q[14, 1] - q[13, 1]), -1, "inner-lip gap (13 to 14) closes"),
    "lip_spread": (lambda q: float(q[lm.MOUTH_CORNERS[1], 0] - q[lm.MOUTH_CORNERS[0], 0]), +1,
                   "mouth corners move apart"),
    "blink_l": (lambda q: eye_opening(q, lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER), -1, "left eye opening shrinks"),
    "blink_r": (lambda q: eye_opening(q, lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER), -1, "right eye opening shrinks"),
    "head_yaw": (lambda q: float(q[lm.NOSE_TIP, 0]), +1, "nose tip moves towards image right"),
    "brow_raise_l": (lambda q: float(-q[list(LEFT_BROW_UPPER), 1].mean()), +1, "left brow rises"),
    "mouth_corner_lift": (lambda q: float(q[lm.NOSE_TIP, 1] - q[list(lm.MOUTH_CORNERS), 1].mean()), +1,
                          "mouth corners rise towards the nose"),
    "gaze_x": (lambda q: float(q[list(IRIS_CENTERS), 0].mean()
                               - q[list(lm.RIGHT_EYE_CENTER_POINTS + lm.LEFT_EYE_CENTER_POINTS), 0].mean()), +1,
               "irises move towards image right within the eyes"),
}


def test_every_tested_param_is_a_documented_one():
    assert set(FEATURES) <= set(SPECS)


def test_rest_pose_renders_the_reference(face):
    portrait, rig, renderer = face
    frame = renderer.render(rig.pose(MotionParams()))
    assert frame.shape == portrait.image.shape and frame.dtype == np.uint8
    mse = float(np.mean((frame.astype(np.float64) - portrait.image.astype(np.float64)) ** 2))
    psnr = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    assert psnr >= 40.0, f"rest frame is {psnr:.2f} dB PSNR from the reference; at least 40 dB is required"


@pytest.mark.parametrize("name", list(FEATURES))
def test_redetected_face_moves_the_commanded_way(face, photo_face, name):
    if name == "lip_press":
        face = photo_face
    portrait, _, _ = face
    iod = portrait.inter_ocular
    feature, sign, meaning = FEATURES[name]
    values = three_values(name)
    commanded, detected = [], []
    for v in values:
        cmd, det = redetect(face, MotionParams(**{name: v}))
        commanded.append(100 * feature(cmd) / iod)
        detected.append(100 * feature(det) / iod)
    steps = [sign * (b - a) for a, b in zip(detected, detected[1:])]
    report = (f"{name} at {values}: expected '{meaning}' by >= {MIN_STEP_PCT} % IOD per step; "
              f"re-detected {[round(d, 2) for d in detected]} % IOD, commanded {[round(c, 2) for c in commanded]}")
    assert all(s >= MIN_STEP_PCT for s in steps), report


@pytest.mark.parametrize("name, other", [("blink_l", "blink_r"), ("blink_r", "blink_l")])
def test_a_blink_leaves_the_other_eye_open(face, name, other):
    portrait, _, _ = face
    feature = FEATURES[other][0]
    _, rest = redetect(face, MotionParams())
    _, shut = redetect(face, MotionParams(**{name: SPECS[name].high}))
    change = 100 * abs(feature(shut) - feature(rest)) / portrait.inter_ocular
    assert change < 2.0, f"{name}=1 changes the re-detected {other} eye opening by {change:.2f} % IOD"


def teeth_pixels(frame: np.ndarray, points: np.ndarray) -> int:
    """Bright, unsaturated pixels (teeth) inside the outer lip contour."""
    outer = np.concatenate([points[list(lm.LIPS_OUTER_UPPER)], points[list(lm.LIPS_OUTER_LOWER)][::-1]])
    mask = np.zeros(frame.shape[:2], dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(outer).astype(np.int32)], 255)
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    return int(((mask > 0) & (hsv[..., 2] > 170) & (hsv[..., 1] < 60)).sum())


def test_pressed_lips_hide_the_teeth_of_a_smiling_portrait(photo_face):
    """The bundled portrait smiles with its teeth showing; lips pressed shut must cover them, not squeeze
    them into a bright sliver between the lips (which reads as a mouth still ajar)."""
    _, rig, renderer = photo_face
    counts = {}
    for v in (0.0, 1.0):
        pose = rig.pose(MotionParams(lip_press=v))
        counts[v] = teeth_pixels(renderer.render(pose), pose.points)
    assert counts[0.0] > 200, f"the bundled portrait should show its teeth at rest ({counts[0.0]} teeth pixels)"
    assert counts[1.0] < 0.25 * counts[0.0], f"teeth pixels between pressed lips: {counts[1.0]} of {counts[0.0]} at rest"
