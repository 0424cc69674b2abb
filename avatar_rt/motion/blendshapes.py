"""The motion vector for 3D clients: ARKit's 52 blendshapes and Oculus's 15 visemes.

Both maps are affine in the *rectified* motion vector [v⁺, v⁻] (each signed
parameter split into its positive and negative parts, so a smile and a frown can
drive different shapes), clipped to [0, 1]:

    arkit   = clip(A · [v⁺; v⁻], 0, 1)            (52 weights)
    visemes = clip(V · [v⁺; v⁻] + b, 0, 1)        (15 weights; b puts `sil` at 1 for a still mouth)

"Left" in ARKit names is the subject's left, as in our `blink_l`. Head pose is not
a blendshape; clients take `head_pose()` (yaw, pitch, roll in radians) instead.
"""

from __future__ import annotations

import numpy as np

from avatar_rt.motion.params import PARAM_INDEX, PARAM_NAMES, MotionParams

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)

VISEME_NAMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou",
)

# Each target: {source: weight}; a source is a parameter name with "+" or "-"
# for its positive or negative part (unsigned parameters are their own "+").
_ARKIT: dict[str, dict[str, float]] = {
    "eyeBlinkLeft": {"blink_l+": 1}, "eyeBlinkRight": {"blink_r+": 1},
    # The subject's left eye sits at image right: looking "in" (to the nose) is towards image left.
    "eyeLookInLeft": {"gaze_x-": 1}, "eyeLookOutLeft": {"gaze_x+": 1},
    "eyeLookInRight": {"gaze_x+": 1}, "eyeLookOutRight": {"gaze_x-": 1},
    "eyeLookUpLeft": {"gaze_y-": 1}, "eyeLookUpRight": {"gaze_y-": 1},
    "eyeLookDownLeft": {"gaze_y+": 1}, "eyeLookDownRight": {"gaze_y+": 1},
    "eyeSquintLeft": {"eye_squint+": 1}, "eyeSquintRight": {"eye_squint+": 1},
    "eyeWideLeft": {"eye_wide+": 1}, "eyeWideRight": {"eye_wide+": 1},
    "jawOpen": {"jaw_open+": 1},
    "mouthClose": {"lip_press+": 1},
    "mouthFunnel": {"lip_round+": 0.5}, "mouthPucker": {"lip_round+": 1},
    "mouthLeft": {"mouth_shift+": 1}, "mouthRight": {"mouth_shift-": 1},
    "mouthSmileLeft": {"mouth_corner_lift+": 1}, "mouthSmileRight": {"mouth_corner_lift+": 1},
    "mouthFrownLeft": {"mouth_corner_lift-": 1}, "mouthFrownRight": {"mouth_corner_lift-": 1},
    "mouthDimpleLeft": {"lip_spread+": 0.3}, "mouthDimpleRight": {"lip_spread+": 0.3},
    "mouthStretchLeft": {"lip_spread+": 1}, "mouthStretchRight": {"lip_spread+": 1},
    "mouthRollLower": {"lower_lip_curl-": 1}, "mouthRollUpper": {"upper_lip_curl-": 1},
    "mouthShrugLower": {"lower_lip_curl+": 1}, "mouthShrugUpper": {"upper_lip_curl+": 1},
    "mouthPressLeft": {"lip_press+": 1}, "mouthPressRight": {"lip_press+": 1},
    "mouthLowerDownLeft": {"lower_lip_drop+": 1}, "mouthLowerDownRight": {"lower_lip_drop+": 1},
    "mouthUpperUpLeft": {"upper_lip_raise+": 1}, "mouthUpperUpRight": {"upper_lip_raise+": 1},
    "browDownLeft": {"brow_raise_l-": 1, "brow_furrow+": 0.5},
    "browDownRight": {"brow_raise_r-": 1, "brow_furrow+": 0.5},
    "browInnerUp": {"brow_inner_raise+": 1},
    "browOuterUpLeft": {"brow_raise_l+": 1}, "browOuterUpRight": {"brow_raise_r+": 1},
    "cheekSquintLeft": {"cheek_raise+": 1}, "cheekSquintRight": {"cheek_raise+": 1},
    "noseSneerLeft": {"nose_wrinkle+": 1}, "noseSneerRight": {"nose_wrinkle+": 1},
}

_VISEMES: dict[str, dict[str, float]] = {
    "sil": {"jaw_open+": -1.5, "lip_round+": -1, "lip_spread+": -1, "lip_press+": -1},
    "PP": {"lip_press+": 1},
    "FF": {"lower_lip_curl-": 1, "teeth_show+": 0.3},
    "TH": {"jaw_open+": 0.3, "teeth_show+": 0.5},
    "DD": {"jaw_open+": 0.4, "teeth_show+": 0.3},
    "kk": {"jaw_open+": 0.5},
    "CH": {"lip_round+": 0.6, "teeth_show+": 0.3},
    "SS": {"lip_spread+": 0.6, "teeth_show+": 0.4},
    "nn": {"jaw_open+": 0.3, "teeth_show+": 0.2},
    "RR": {"lip_round+": 0.6},
    "aa": {"jaw_open+": 1},
    "E": {"jaw_open+": 0.5, "lip_spread+": 0.5},
    "ih": {"jaw_open+": 0.2, "lip_spread+": 0.8},
    "oh": {"jaw_open+": 0.6, "lip_round+": 0.6},
    "ou": {"lip_round+": 1},
}
_VISEME_BIAS = {"sil": 1.0}

_N = len(PARAM_NAMES)


def _matrix(table: dict[str, dict[str, float]], names: tuple[str, ...]) -> np.ndarray:
    m = np.zeros((len(names), 2 * _N), dtype=np.float32)
    for row, target in enumerate(names):
        for source, weight in table.get(target, {}).items():
            name, sign = source[:-1], source[-1]
            m[row, PARAM_INDEX[name] + (_N if sign == "-" else 0)] = weight
    return m


ARKIT_MATRIX = _matrix(_ARKIT, ARKIT_NAMES)  # (52, 58)
VISEME_MATRIX = _matrix(_VISEMES, VISEME_NAMES)  # (15, 58)
VISEME_BIAS = np.array([_VISEME_BIAS.get(n, 0.0) for n in VISEME_NAMES], dtype=np.float32)


def rectify(vector: np.ndarray) -> np.ndarray:
    """[v⁺; v⁻]: positive parts, then the magnitudes of the negative parts."""
    v = np.asarray(vector, dtype=np.float32)
    return np.concatenate([np.maximum(v, 0.0), np.maximum(-v, 0.0)])


def arkit_weights(params: MotionParams) -> dict[str, float]:
    w = np.clip(ARKIT_MATRIX @ rectify(params.to_vector()), 0.0, 1.0)
    return {name: float(x) for name, x in zip(ARKIT_NAMES, w)}


def viseme_weights(params: MotionParams) -> dict[str, float]:
    w = np.clip(VISEME_MATRIX @ rectify(params.to_vector()) + VISEME_BIAS, 0.0, 1.0)
    return {name: float(x) for name, x in zip(VISEME_NAMES, w)}


def head_pose(params: MotionParams) -> dict[str, float]:
    return {"yaw": params.head_yaw, "pitch": params.head_pitch, "roll": params.head_roll}
