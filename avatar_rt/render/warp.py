"""Dense landmark-driven warp of the reference portrait (CPU, OpenCV remap).

Once per avatar: the face landmarks plus a ring of fixed anchors around the head
are triangulated, and every pixel of the region of interest gets its triangle's
three vertex ids and barycentric weights. Per frame: the landmark displacements
are spread over the pixels with those weights (at half resolution — the field
is piecewise linear, so bilinear upsampling loses almost nothing), inverted with
one fixed-point step, and the reference is resampled with `cv2.remap`.
Anchors never move, so the warped region meets the untouched frame without a seam.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm

RING_POINTS = 28
RING_SCALE = 1.55  # anchor ellipse radius, in face half-extents


def _triangulate(points: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = rect
    subdiv = cv2.Subdiv2D((x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    lookup = {}
    for i, (x, y) in enumerate(points):
        key = (float(x), float(y))
        if key not in lookup:
            lookup[key] = i
            subdiv.insert(key)
    tris = []
    for t in subdiv.getTriangleList():
        ids = [lookup.get((float(t[k]), float(t[k + 1]))) for k in (0, 2, 4)]
        if None not in ids:
            tris.append(ids)
    return np.array(tris, dtype=np.int32)


class TriangleWarp:
    """Precomputed piecewise-linear displacement spreading for one reference."""

    def __init__(self, rest_points: np.ndarray, image_size: int):
        face = rest_points[: lm.NUM_FACE_LANDMARKS].astype(np.float64)
        centre = (face.min(axis=0) + face.max(axis=0)) / 2
        half = (face.max(axis=0) - face.min(axis=0)) / 2
        angles = np.linspace(0, 2 * np.pi, RING_POINTS, endpoint=False)
        ring = centre + RING_SCALE * half * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        ring = np.clip(ring, 0, image_size - 1)
        x0, y0 = np.floor(ring.min(axis=0)).astype(int)
        x1, y1 = np.ceil(ring.max(axis=0)).astype(int)
        x1, y1 = min(x1, image_size - 1), min(y1, image_size - 1)
        self.roi = (int(x0), int(y0), int(x1) + 1, int(y1) + 1)
        box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1],
                        [(x0 + x1) / 2, y0], [(x0 + x1) / 2, y1], [x0, (y0 + y1) / 2], [x1, (y0 + y1) / 2]])
        vertices = np.concatenate([face, ring, box]).astype(np.float32)
        self.num_moving = len(face)
        self.vertices = vertices
        self.triangles = _triangulate(vertices, (x0, y0, x1, y1))
        self._precompute(vertices)

    def _precompute(self, vertices: np.ndarray) -> None:
        x0, y0, x1, y1 = self.roi
        w, h = x1 - x0, y1 - y0
        # Half-resolution sample grid, in full-image coordinates.
        hw, hh = (w + 1) // 2, (h + 1) // 2
        ids = np.full((hh, hw), -1, dtype=np.int32)
        scaled = (vertices - np.array([x0, y0], dtype=np.float32)) / 2
        for t, tri in enumerate(self.triangles):
            pts = np.round(scaled[tri] * 16).astype(np.int32)  # 4 fractional bits
            cv2.fillConvexPoly(ids, pts, int(t), lineType=cv2.LINE_8, shift=4)
        ys, xs = np.mgrid[0:hh, 0:hw].astype(np.float32)
        px = xs * 2 + x0
        py = ys * 2 + y0
        tri_ids = np.where(ids < 0, 0, ids)
        corners = vertices[self.triangles[tri_ids]]  # (hh, hw, 3, 2)
        a, b, c = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
        v0, v1 = b - a, c - a
        v2x, v2y = px - a[..., 0], py - a[..., 1]
        den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
        den = np.where(np.abs(den) < 1e-9, 1e-9, den)
        wb = (v2x * v1[..., 1] - v1[..., 0] * v2y) / den
        wc = (v0[..., 0] * v2y - v2x * v0[..., 1]) / den
        weights = np.stack([1 - wb - wc, wb, wc], axis=-1)
        weights = np.clip(weights, -0.5, 1.5)
        weights[ids < 0] = 0.0  # outside every triangle (only at the very border): no motion
        self._vid = self.triangles[tri_ids].astype(np.int32)
        self._w = weights.astype(np.float32)
        self._size = (w, h)
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        self._grid = np.stack([gx, gy], axis=-1)

    def displacement(self, delta: np.ndarray) -> np.ndarray:
        """Per-pixel forward displacement (h, w, 2) over the ROI from the moving points' deltas."""
        full = np.zeros((len(self.vertices), 2), dtype=np.float32)
        full[: self.num_moving] = delta[: self.num_moving]
        field = np.einsum("hwk,hwkc->hwc", self._w, full[self._vid], optimize=False)
        return cv2.resize(field, self._size, interpolation=cv2.INTER_LINEAR)

    def warp(self, reference: np.ndarray, rest: np.ndarray, moved: np.ndarray, out: np.ndarray) -> None:
        """Write into `out` (a copy of the reference) the reference deformed from `rest` to `moved`."""
        delta = (moved - rest).astype(np.float32)
        if not np.any(np.abs(delta[: self.num_moving]) > 1e-3):
            return
        field = self.displacement(delta)
        # Backward map: the source of output pixel p is p - D(p - D(p)), one
        # fixed-point step towards the exact inverse of the forward field.
        first = self._grid - field
        field_at = cv2.remap(field, first[..., 0] - self.roi[0], first[..., 1] - self.roi[1],
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        src = self._grid - field_at
        x0, y0, x1, y1 = self.roi
        out[y0:y1, x0:x1] = cv2.remap(reference, src[..., 0], src[..., 1], cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
