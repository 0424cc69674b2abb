"""Once-per-avatar image layers: who is the person, and what is behind them.

The person (face, hair, neck, shoulders) is warped; the background never moves.
When the head turns, a sliver of background that the head used to cover shows,
so the background plate is the portrait with the person filled in from the
surrounding background (a push-pull fill: smooth, and only its edges are ever seen).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

_seg_lock = threading.Lock()
_segmenter = None


def person_alpha(image_bgr: np.ndarray) -> np.ndarray:
    """Soft person mask in [0, 1] (float32, image size) from MediaPipe selfie segmentation."""
    global _segmenter
    import mediapipe as mp

    with _seg_lock:
        if _segmenter is None:
            _segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        result = _segmenter.process(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    mask = result.segmentation_mask
    if mask is None:
        return np.zeros(image_bgr.shape[:2], dtype=np.float32)
    # The model's mask is soft over a few pixels; sharpen it a little so the
    # hair edge carries the hair and not a band of background.
    alpha = np.clip((mask.astype(np.float32) - 0.25) / 0.5, 0.0, 1.0)
    return cv2.GaussianBlur(alpha, (3, 3), 0)


def push_pull_fill(image: np.ndarray, known: np.ndarray, levels: int = 7) -> np.ndarray:
    """Fill pixels where `known` is 0 from their known surroundings, coarse to fine."""
    img = image.astype(np.float32)
    w = known.astype(np.float32)
    pyramid = []
    for _ in range(levels):
        pyramid.append((img, w))
        weighted = cv2.pyrDown(img * w[..., None])
        w_small = cv2.pyrDown(w)
        img = weighted / np.maximum(w_small, 1e-6)[..., None]
        w = np.minimum(w_small * 4.0, 1.0)
    filled = img
    for level_img, level_w in reversed(pyramid):
        up = cv2.pyrUp(filled, dstsize=(level_img.shape[1], level_img.shape[0]))
        filled = level_img * level_w[..., None] + up * (1.0 - level_w[..., None])
    return np.clip(filled, 0, 255).astype(np.uint8)


def background_plate(image: np.ndarray, alpha: np.ndarray, grow_px: int) -> np.ndarray:
    """The portrait with the person (grown by `grow_px`, to take the hair's halo) replaced by background."""
    person = (alpha > 0.1).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
    person = cv2.dilate(person, kernel)
    return push_pull_fill(image, 1 - person)
