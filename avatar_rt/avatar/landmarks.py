"""Named index sets of MediaPipe Face Mesh's 478 landmarks (468 face + 10 iris).

Contours run left-to-right in image space for a frontal face (subject's right
side first), so upper and lower curves of one feature pair up by position.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 478
NUM_FACE_LANDMARKS = 468  # the iris points (468..477) are refined extras

LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
MOUTH_CORNERS = (61, 291)

# Eye contours: upper lid and lower lid from outer to inner corner of the
# subject's right eye (image left) and inner to outer of the left eye.
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (362, 398, 384, 385, 386, 387, 388, 466, 263)
LEFT_EYE_LOWER = (362, 382, 381, 380, 374, 373, 390, 249, 263)
RIGHT_EYE_CENTER_POINTS = (33, 133)
LEFT_EYE_CENTER_POINTS = (362, 263)

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
    400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
    54, 103, 67, 109,
)
CHIN = 152
FOREHEAD = 10
NOSE_TIP = 1


def inner_mouth_polygon(points: np.ndarray) -> np.ndarray:
    """The closed inner-lip contour (upper left→right, then lower right→left)."""
    upper = points[list(LIPS_INNER_UPPER)]
    lower = points[list(LIPS_INNER_LOWER[-2:0:-1])]
    return np.concatenate([upper, lower], axis=0)


def lip_bodies(points: np.ndarray) -> tuple[list[int], list[int]]:
    """The mesh points inside the upper and the lower lip (between each lip's outer and inner contour,
    contours excluded), for a frontal face with the lips in any position."""
    import cv2

    contours = set(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER + LIPS_INNER_UPPER + LIPS_INNER_LOWER)
    out = []
    for outer, inner in ((LIPS_OUTER_UPPER, LIPS_INNER_UPPER), (LIPS_OUTER_LOWER, LIPS_INNER_LOWER)):
        band = np.concatenate([points[list(outer), :2], points[list(inner), :2][::-1]]).astype(np.float32)
        out.append([i for i in range(NUM_FACE_LANDMARKS) if i not in contours
                    and cv2.pointPolygonTest(band, (float(points[i, 0]), float(points[i, 1])), False) > 0])
    return out[0], out[1]


def eye_centers(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right eye centre, left eye centre) in the subject's sense, from the eye corners."""
    right = points[list(RIGHT_EYE_CENTER_POINTS)].mean(axis=0)
    left = points[list(LEFT_EYE_CENTER_POINTS)].mean(axis=0)
    return right, left


def inter_ocular(points: np.ndarray) -> float:
    right, left = eye_centers(points)
    return float(np.linalg.norm(left[:2] - right[:2]))
