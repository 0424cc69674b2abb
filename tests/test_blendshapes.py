"""The ARKit and viseme maps: what a 3D client driving a rigged head would see."""

from __future__ import annotations

import numpy as np

from avatar_rt.motion.blendshapes import ARKIT_NAMES, VISEME_NAMES, arkit_weights, head_pose, viseme_weights
from avatar_rt.motion.params import PARAMS, MotionParams


def test_the_standard_name_sets():
    assert len(ARKIT_NAMES) == len(set(ARKIT_NAMES)) == 52
    assert len(VISEME_NAMES) == len(set(VISEME_NAMES)) == 15


def test_rest_is_a_neutral_face_and_silence():
    assert all(v == 0.0 for v in arkit_weights(MotionParams()).values())
    visemes = viseme_weights(MotionParams())
    assert visemes["sil"] == 1.0 and sum(visemes.values()) == 1.0


def test_each_articulation_drives_its_shape():
    cases = {
        "jawOpen": MotionParams(jaw_open=1.0),
        "eyeBlinkLeft": MotionParams(blink_l=1.0),
        "eyeBlinkRight": MotionParams(blink_r=1.0),
        "mouthPucker": MotionParams(lip_round=1.0),
        "mouthSmileLeft": MotionParams(mouth_corner_lift=1.0),
        "mouthFrownRight": MotionParams(mouth_corner_lift=-1.0),
        "browInnerUp": MotionParams(brow_inner_raise=1.0),
        "eyeLookOutLeft": MotionParams(gaze_x=1.0),  # the subject's left eye is at image right
    }
    for shape, params in cases.items():
        weights = arkit_weights(params)
        assert weights[shape] == 1.0, shape
        assert weights["eyeBlinkLeft"] == (1.0 if shape == "eyeBlinkLeft" else 0.0)


def test_visemes_pick_the_mouth_shape():
    for params, expected in ((MotionParams(lip_press=1.0), "PP"), (MotionParams(jaw_open=1.0), "aa"),
                             (MotionParams(lip_round=1.0), "ou"), (MotionParams(lip_spread=1.0), "ih")):
        weights = viseme_weights(params)
        assert max(weights, key=weights.get) == expected
        assert weights["sil"] == 0.0


def test_weights_stay_in_range_for_any_motion():
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = [rng.uniform(p.low, p.high) for p in PARAMS]
        params = MotionParams.from_vector(np.array(v))
        for weights in (arkit_weights(params), viseme_weights(params)):
            assert all(0.0 <= w <= 1.0 for w in weights.values())
    assert head_pose(MotionParams(head_yaw=0.2))["yaw"] == 0.2
