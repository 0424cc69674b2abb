"""A donor mouth: real teeth from a public-domain photo, for a portrait that shows none of its own.

The one way issue 13 names besides drawing them (mouth_synth.py): the bundled
portrait's open smile (Eileen Collins, NASA, public domain;
avatar_rt/assets/ATTRIBUTION.md) is moved onto the portrait once, by the
similarity that takes the donor's upper inner lip onto the portrait's, and its
colours are scaled to the portrait's exposure and lips. mouth.py then shows it
exactly as it shows a photo's own teeth (upper set with the skull, lower with
the jaw, over the drawn cavity). benchmarks/mouth_interiors.py measures the two
ways on every test portrait; PortraitRenderer's `drawn_teeth` picks one.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
from avatar_rt.render.mouth_synth import TEETH_OF_WHITE, lip_bgr, similarity, white_level


@functools.lru_cache(maxsize=1)
def _donor() -> tuple[np.ndarray, np.ndarray]:
    """The bundled portrait with its own open mouth, and its landmarks (x, y); analysed once per process."""
    photo = load_portrait(DEFAULT_PORTRAIT, mouth_rest="photo")
    return photo.image, photo.landmarks[:, :2].astype(np.float64)


def _anchors(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(2, 3): the photo's teeth white (its white level in TEETH_OF_WHITE's tint) and its lip colour, BGR."""
    return np.stack([white_level(image, points) * np.array(TEETH_OF_WHITE), lip_bgr(image, points)])


def donor_teeth(image: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The donor's open mouth in this portrait's frame: (image (h, w, 3) uint8, landmarks (n, 2) float32), for
    MouthInterior's `photo`/`photo_rest`. Only its inner-lip polygon is ever shown, so the rest of the image
    is the donor's face, moved; the landmarks are the portrait's, with the inner lips the donor's, moved."""
    d_image, d_points = _donor()
    inner = list(lm.LIPS_INNER_UPPER) + list(lm.LIPS_INNER_LOWER)
    m = similarity(d_points[list(lm.LIPS_INNER_UPPER)], rest[list(lm.LIPS_INNER_UPPER), :2].astype(np.float64))
    h, w = image.shape[:2]
    moved = cv2.warpAffine(d_image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Colour: a gain per channel, least squares through two anchors (teeth white, lips), so the teeth take the
    # portrait's exposure and the gums its lip tone, and the dark of the mouth stays dark.
    src, dst = _anchors(d_image, d_points), _anchors(image, rest[:, :2])
    gain = (src * dst).sum(axis=0) / np.maximum((src * src).sum(axis=0), 1e-6)
    matched = np.clip(moved.astype(np.float32) * gain.astype(np.float32), 0, 255).astype(np.uint8)
    points = rest[:, :2].astype(np.float32).copy()
    points[inner] = (d_points[inner] @ m[:, :2].T + m[:, 2]).astype(np.float32)
    return matched, points
