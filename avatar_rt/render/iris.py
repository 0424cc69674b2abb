"""Irises that can look around: drawn inside the eye opening, wherever gaze puts them.

Once per avatar each iris is lifted out (a round patch) and the eye behind it is
filled with the eye's own white, giving a plate the warp reads from; per frame
the patch goes back at the rig's iris position, clipped by the current lids.
An eye opened wider therefore shows more white, not a stretched iris.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.render import layers

IRIS_CENTRES = (468, 473)  # subject's right (image left), left
IRIS_RINGS = ((469, 470, 471, 472), (474, 475, 476, 477))
EYE_CONTOURS = ((lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER), (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER))


def eye_polygon(points: np.ndarray, upper, lower) -> np.ndarray:
    return np.concatenate([points[list(upper)], points[list(lower[-2:0:-1])]])


class IrisLayer:
    def __init__(self, reference: np.ndarray, rest: np.ndarray):
        self.size = reference.shape[0]
        plate = reference.copy()
        self._eyes = []
        for centre_idx, ring, (upper, lower) in zip(IRIS_CENTRES, IRIS_RINGS, EYE_CONTOURS):
            centre = rest[centre_idx].astype(np.float64)
            radius = float(np.mean(np.linalg.norm(rest[list(ring)] - centre, axis=1)))
            if radius < 1.5:
                continue
            half = int(np.ceil(radius)) + 3
            cx, cy = int(round(centre[0])), int(round(centre[1]))
            if not (2 * half <= cx < self.size - 2 * half and 2 * half <= cy < self.size - 2 * half):
                continue
            patch = reference[cy - half:cy + half + 1, cx - half:cx + half + 1].copy()
            yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
            dist = np.hypot(xx + cx - centre[0], yy + cy - centre[1])
            disk = np.clip(radius + 0.5 - dist, 0.0, 1.0)[..., None]
            # The eye's white behind the iris: filled smoothly from the visible
            # white around it (the brighter half of the opening outside the iris).
            opening = np.zeros(reference.shape[:2], dtype=np.uint8)
            cv2.fillPoly(opening, [np.round(eye_polygon(rest, upper, lower)).astype(np.int32)], 1)
            sl = (slice(cy - 2 * half, cy + 2 * half + 1), slice(cx - 2 * half, cx + 2 * half + 1))
            box = reference[sl]
            gray = cv2.cvtColor(box, cv2.COLOR_BGR2GRAY)
            yy2, xx2 = np.mgrid[sl[0], sl[1]].astype(np.float32)
            outside_iris = np.hypot(xx2 - centre[0], yy2 - centre[1]) > radius + 1.0
            candidates = opening[sl].astype(bool) & outside_iris
            if candidates.sum() >= 6:
                known = candidates & (gray >= np.percentile(gray[candidates], 30))  # not the lashes
                white = layers.push_pull_fill(box, known.astype(np.uint8), levels=4).astype(np.float32)
                # The upper lid shades the white beneath it.
                lid_y = float(np.interp(centre[0], rest[list(upper), 0], rest[list(upper), 1]))
                low_y = float(np.interp(centre[0], rest[list(lower), 0], rest[list(lower), 1]))
                shade = 0.8 + 0.2 * np.clip((yy2 - lid_y) / max(1.0, 0.6 * (low_y - lid_y)), 0.0, 1.0)
                white = np.clip(white * shade[..., None], 0, 255)
            else:
                white = np.full_like(box, (200, 205, 215))
            inner = (slice(half, 3 * half + 1), slice(half, 3 * half + 1))
            region = plate[cy - half:cy + half + 1, cx - half:cx + half + 1].astype(np.float32)
            inside = opening[cy - half:cy + half + 1, cx - half:cx + half + 1, None].astype(np.float32)
            cover = np.clip(disk * 1.15, 0, 1) * inside
            plate[cy - half:cy + half + 1, cx - half:cx + half + 1] = (
                cover * white[inner] + (1 - cover) * region).astype(np.uint8)
            self._eyes.append((centre_idx, upper, lower, patch, disk, half, centre - np.array([cx, cy])))
        self.plate = plate

    def composite(self, frame: np.ndarray, points: np.ndarray) -> None:
        for centre_idx, upper, lower, patch, disk, half, offset in self._eyes:
            centre = points[centre_idx] - offset
            cx, cy = int(np.floor(centre[0])), int(np.floor(centre[1]))
            fx, fy = centre[0] - cx, centre[1] - cy
            x0, y0 = cx - half - 1, cy - half - 1
            size = 2 * half + 3
            if x0 < 0 or y0 < 0 or x0 + size > self.size or y0 + size > self.size:
                continue
            m = np.float32([[1, 0, fx + 1], [0, 1, fy + 1]])
            moved = cv2.warpAffine(patch, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            alpha = cv2.warpAffine(disk, m, (size, size), flags=cv2.INTER_LINEAR)
            opening = np.zeros((size, size), dtype=np.uint8)
            poly = (eye_polygon(points, upper, lower) - np.array([x0, y0])) * 16
            cv2.fillPoly(opening, [np.round(poly).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
            a = (alpha * (opening.astype(np.float32) / 255.0))[..., None]
            region = frame[y0:y0 + size, x0:x0 + size]
            region[:] = (a * moved + (1 - a) * region).astype(np.uint8)
