"""Appearance edits on the reference image: colour in a region, nothing outside it.

Regions come from the landmarks (lips, cheeks, irises, facial skin) and from the
person mask (hair: the person above the jaw line, outside the face). Colour is
changed in Lab: the region's chroma moves towards the target's, its lightness
mostly stays, so texture and shading survive. Each mask is feathered, so there
is no seam; everything outside the mask is left bit-identical.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm

APPEARANCE = ("lip_colour", "blush", "skin_tone", "iris_colour", "hair_colour")
EYEBROWS = ([70, 63, 105, 66, 107, 55, 65, 52, 53, 46], [300, 293, 334, 296, 336, 285, 295, 282, 283, 276])


def _poly_mask(shape: tuple[int, int], polys: list[np.ndarray], feather: float) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    for poly in polys:
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    out = mask.astype(np.float32) / 255.0
    if feather > 0:
        k = int(2 * round(2 * feather) + 1)
        out = cv2.GaussianBlur(out, (k, k), feather)
    return out


def region_mask(name: str, points: np.ndarray, shape: tuple[int, int], iod: float,
                person_alpha: np.ndarray | None = None) -> np.ndarray:
    """Soft mask (h, w) in [0, 1] of the region an appearance edit recolours."""
    p = points[:, :2]
    if name == "lip_colour":
        outer = np.concatenate([p[list(lm.LIPS_OUTER_UPPER)], p[list(lm.LIPS_OUTER_LOWER[-2:0:-1])]])
        lips = _poly_mask(shape, [outer], 0.02 * iod)
        return np.clip(lips - _poly_mask(shape, [lm.inner_mouth_polygon(p)], 0.01 * iod), 0.0, 1.0)
    if name == "blush":
        mask = np.zeros(shape, dtype=np.float32)
        for cheek in ((50, 101, 118, 117, 123, 187, 205), (280, 330, 347, 346, 352, 411, 425)):
            centre = p[list(cheek)].mean(axis=0)
            cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(0.28 * iod), int(0.2 * iod)), 0, 0, 360, 1.0,
                        -1, cv2.LINE_AA)
        return cv2.GaussianBlur(mask, (0, 0), 0.12 * iod)
    if name == "iris_colour":
        mask = np.zeros(shape, dtype=np.float32)
        for centre_idx, ring, (upper, lower) in ((468, (469, 470, 471, 472), (lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER)),
                                                 (473, (474, 475, 476, 477), (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER))):
            radius = float(np.mean(np.linalg.norm(p[list(ring)] - p[centre_idx], axis=1)))
            disk = np.zeros(shape, dtype=np.float32)
            cv2.circle(disk, (int(round(p[centre_idx, 0] * 16)), int(round(p[centre_idx, 1] * 16))),
                       int(round(radius * 16)), 1.0, -1, cv2.LINE_AA, shift=4)
            opening = _poly_mask(shape, [np.concatenate([p[list(upper)], p[list(lower[-2:0:-1])]])], 0.0)
            mask = np.maximum(mask, disk * opening)
        return mask
    face_outline = p[list(lm.FACE_OVAL)]
    if name == "skin_tone":
        skin = _poly_mask(shape, [face_outline], 0.04 * iod)
        holes = [np.concatenate([p[list(u)], p[list(lo[-2:0:-1])]])
                 for u, lo in ((lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER), (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER))]
        holes.append(np.concatenate([p[list(lm.LIPS_OUTER_UPPER)], p[list(lm.LIPS_OUTER_LOWER[-2:0:-1])]]))
        holes += [p[b] for b in EYEBROWS]
        return np.clip(skin - _poly_mask(shape, holes, 0.02 * iod) * 1.5, 0.0, 1.0)
    if name == "hair_colour":
        if person_alpha is None:
            return np.zeros(shape, dtype=np.float32)
        # The person above the jaw line and outside the face (grown a little so the hairline is kept).
        face = _poly_mask(shape, [face_outline], 0.0)
        face = cv2.dilate(face, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        rows = np.arange(shape[0], dtype=np.float32)[:, None]
        above_jaw = np.clip((p[lm.CHIN, 1] - 0.6 * iod - rows) / (0.2 * iod), 0.0, 1.0)
        mask = person_alpha * (1.0 - face) * above_jaw
        return cv2.GaussianBlur(mask.astype(np.float32), (5, 5), 0)
    raise ValueError(f"unknown appearance edit {name!r}")


def recolour(image: np.ndarray, mask: np.ndarray, rgb: tuple[int, int, int], strength: float,
             keep_lightness: float = 0.85) -> np.ndarray:
    """Move the masked region's colour towards `rgb` by `strength`; outside the mask, bit-identical."""
    if strength <= 0 or not mask.any():
        return image
    ys, xs = np.nonzero(mask > 1e-3)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    patch = image[y0:y1, x0:x1]
    m = (mask[y0:y1, x0:x1] * strength)[..., None]
    lab = cv2.cvtColor(patch, cv2.COLOR_BGR2LAB).astype(np.float32)
    target = cv2.cvtColor(np.uint8([[rgb[::-1]]]), cv2.COLOR_BGR2LAB).astype(np.float32)[0, 0]
    mean_l = float((lab[..., 0] * m[..., 0]).sum() / max(1e-6, m.sum()))
    new = lab.copy()
    # Chroma goes to the target's; lightness shifts by the difference of the means, mostly kept.
    new[..., 1:] = target[1:]
    new[..., 0] = lab[..., 0] + (1.0 - keep_lightness) * (target[0] - mean_l)
    out_patch = cv2.cvtColor(np.clip(new, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR).astype(np.float32)
    blended = m * out_patch + (1.0 - m) * patch.astype(np.float32)
    out = image.copy()
    region = out[y0:y1, x0:x1]
    inside = m[..., 0] > 1e-3
    region[inside] = np.clip(np.round(blended[inside]), 0, 255).astype(np.uint8)
    return out


def blush(image: np.ndarray, mask: np.ndarray, strength: float) -> np.ndarray:
    """A warm flush over the cheeks (multiplicative, so the skin's texture shows through)."""
    return recolour(image, mask, (222, 110, 120), 0.35 * strength, keep_lightness=0.95)
