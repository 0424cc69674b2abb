"""Dense warp of the portrait from the rig's landmark motion (CPU, OpenCV remap).

Every output pixel p gets a source position in the reference, in two parts:

* the head's rigid motion, exactly inverted: q = p + w(p)·(A⁻¹p − p), where A is
  the rig's 2D head affine and w is 1 over the head and hair, fading to 0 down
  the neck, so hair and neck follow the head while the shoulders stay;
* the face's own deformation, on top: src = q − D(q − D(q)), where D is the
  forward displacement of the landmarks (brought back through A⁻¹) spread over
  the pixels with barycentric weights precomputed once per avatar on the rest
  mesh (landmarks plus a ring of still anchors around the face), evaluated at
  half resolution (the field is piecewise linear) and inverted with one
  fixed-point step.

The person layer and its alpha are resampled with this map; the background
plate never moves (renderer.py composites them).
"""

from __future__ import annotations

from typing import Protocol

import threading

import cv2
import numpy as np
import scipy.sparse

from avatar_rt.avatar import landmarks as lm

RING_POINTS = 28
RING_SCALE = 1.55  # anchor ellipse radius, in face half-extents
NECK_FULL_IOD = 0.3  # hair and head follow fully down to this far below the chin …
NECK_NONE_IOD = 1.4  # … and not at all from here down (the shoulders)


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


MOUTH_OPEN_IOD = 0.15  # the lower face is moved down this far for the triangulation only (see _mouth_opened)


def _mouth_opened(vertices: np.ndarray, face: np.ndarray) -> np.ndarray:
    """The mesh vertices with the mouth held open, for choosing the triangles.

    Lips that meet at rest (a closed photo, or one closed by rest_mouth.py) put the two inner contours a
    fraction of a pixel apart, and a Delaunay triangulation of that joins points inside the upper lip to
    the lower lip's edge: opening the jaw then dragged the upper lip along with it (its last 7 px smeared on
    the bundled portrait at jaw_open 1). Triangulated with everything below the lips moved down, the
    opening is a row of triangles between the two inner contours, which collapse to slivers at rest and
    open with the jaw; no triangle spans from one lip into the other.
    """
    iod = lm.inter_ocular(face)
    up = face[list(lm.LIPS_INNER_UPPER)]
    low = face[list(lm.LIPS_INNER_LOWER)]
    left, right = float(up[:, 0].min()), float(up[:, 0].max())
    seam = np.interp(vertices[:, 0], up[:, 0], 0.5 * (up[:, 1] + low[:, 1]))
    # Below the lips' meeting line, across the mouth and fading out over half an IOD beyond its corners.
    beyond = np.maximum(left - vertices[:, 0], vertices[:, 0] - right).clip(min=0.0) / (0.5 * iod)
    across = np.clip(1.0 - beyond, 0.0, 1.0)
    below = (vertices[:, 1] > seam).astype(np.float64)
    below[list(lm.LIPS_INNER_UPPER) + list(lm.LIPS_OUTER_UPPER)] = 0.0  # the corners are in both lists
    below[list(lm.LIPS_INNER_LOWER[1:-1]) + list(lm.LIPS_OUTER_LOWER[1:-1])] = 1.0
    below[len(face):] = 0.0  # the still anchors
    opened = vertices.astype(np.float64).copy()
    opened[:, 1] += MOUTH_OPEN_IOD * iod * below * across
    return opened.astype(np.float32)


class LocalField:
    """Barycentric spreading of landmark displacements over the face's region of interest."""

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
        self.triangles = _triangulate(_mouth_opened(vertices, face), (x0, y0, x1, y1))
        self._precompute(vertices)

    def _precompute(self, vertices: np.ndarray) -> None:
        x0, y0, x1, y1 = self.roi
        w, h = x1 - x0, y1 - y0
        hw, hh = (w + 1) // 2, (h + 1) // 2
        ids = np.full((hh, hw), -1, dtype=np.int32)
        scaled = (vertices - np.array([x0, y0], dtype=np.float32)) / 2
        for t, tri in enumerate(self.triangles):
            pts = np.round(scaled[tri] * 16).astype(np.int32)  # 4 fractional bits
            cv2.fillConvexPoly(ids, pts, int(t), lineType=cv2.LINE_8, shift=4)
        ys, xs = np.mgrid[0:hh, 0:hw].astype(np.float32)
        px, py = xs * 2 + x0, ys * 2 + y0
        tri_ids = np.where(ids < 0, 0, ids)
        corners = vertices[self.triangles[tri_ids]]  # (hh, hw, 3, 2)
        a, b, c = corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]
        v0, v1 = b - a, c - a
        v2x, v2y = px - a[..., 0], py - a[..., 1]
        den = v0[..., 0] * v1[..., 1] - v1[..., 0] * v0[..., 1]
        den = np.where(np.abs(den) < 1e-9, 1e-9, den)
        wb = (v2x * v1[..., 1] - v1[..., 0] * v2y) / den
        wc = (v0[..., 0] * v2y - v2x * v0[..., 1]) / den
        weights = np.clip(np.stack([1 - wb - wc, wb, wc], axis=-1), -0.5, 1.5)
        weights[ids < 0] = 0.0  # outside every triangle (only at the very border): no motion
        self.vertex_ids = self.triangles[tri_ids].astype(np.int32)  # (hh, hw, 3)
        self.weights = weights.astype(np.float32)  # (hh, hw, 3)
        self.size = (w, h)
        self._half_shape = (hh, hw)
        # The same weights as a sparse (pixels × vertices) matrix: the per-frame
        # spreading is then one sparse product.
        rows = np.repeat(np.arange(hh * hw), 3)
        self._matrix = scipy.sparse.csr_matrix(
            (self.weights.reshape(-1), (rows, self.vertex_ids.reshape(-1))), shape=(hh * hw, len(vertices)))

    def field(self, delta: np.ndarray) -> np.ndarray:
        """Forward displacement (h, w, 2) over the ROI from the moving points' deltas (n, 2)."""
        full = np.zeros((len(self.vertices), 2), dtype=np.float32)
        full[: self.num_moving] = delta[: self.num_moving]
        half = (self._matrix @ full).reshape(*self._half_shape, 2).astype(np.float32, copy=False)
        return cv2.resize(half, self.size, interpolation=cv2.INTER_LINEAR)


class DenseWarp:
    """Builds the per-frame backward map (output pixel → reference pixel)."""

    # Fixed-point steps towards the exact inverse of the face's own deformation.
    inverse_steps = 1

    def __init__(self, rest_points: np.ndarray, image_size: int, chin_y: float, iod: float):
        self.size = image_size
        self.rest = rest_points.astype(np.float32)
        self.local = LocalField(self.rest, image_size)
        ys = np.arange(image_size, dtype=np.float32)
        t = (ys - (chin_y + NECK_FULL_IOD * iod)) / ((NECK_NONE_IOD - NECK_FULL_IOD) * iod)
        t = np.clip(t, 0.0, 1.0)
        head_w = 1.0 - t * t * (3 - 2 * t)
        # Below the last row with any head weight nothing moves: maps cover only the rows above.
        self.rows = int(min(image_size, np.nonzero(head_w > 0)[0].max() + 2)) if (head_w > 0).any() else 0
        self.head_w = head_w[: self.rows].astype(np.float32)
        self.ys = ys[: self.rows]
        self.xs = np.arange(image_size, dtype=np.float32)
        # Map buffers are reused frame to frame, one pair per thread (sessions
        # sharing an avatar render on their own threads).
        self._buffers = threading.local()

    def _maps(self) -> tuple[np.ndarray, np.ndarray]:
        bufs = getattr(self._buffers, "maps", None)
        if bufs is None:
            bufs = (np.empty((self.rows, self.size), np.float32), np.empty((self.rows, self.size), np.float32))
            self._buffers.maps = bufs
        return bufs

    def backward_map(self, warp_points: np.ndarray, head_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source coordinates (rows, size) for each output pixel of the top `rows` rows."""
        m = np.vstack([head_affine.astype(np.float64), [0.0, 0.0, 1.0]])
        inv = np.linalg.inv(m)[:2]
        w, ys, xs = self.head_w, self.ys, self.xs
        # Rigid head part, exactly inverted, faded out down the neck. Row by row
        # the map is affine in x, so it is an outer product plus a column.
        map_x, map_y = self._maps()
        np.multiply((1.0 + w * (inv[0, 0] - 1.0)).astype(np.float32)[:, None], xs[None, :], out=map_x)
        map_x += (w * (inv[0, 1] * ys + inv[0, 2])).astype(np.float32)[:, None]
        np.multiply((w * inv[1, 0]).astype(np.float32)[:, None], xs[None, :], out=map_y)
        map_y += (ys + w * ((inv[1, 1] - 1.0) * ys + inv[1, 2])).astype(np.float32)[:, None]
        # The face's own deformation, in the rest frame: where each landmark is
        # once the head's motion is taken back out.
        back = warp_points.astype(np.float64) @ inv[:, :2].T + inv[:, 2]
        delta = (back - self.rest).astype(np.float32)
        if np.abs(delta[: lm.NUM_FACE_LANDMARKS]).max() < 1e-3:
            return map_x, map_y
        field = self.local.field(delta)
        x0, y0, x1, y1 = self.local.roi
        # Output pixels whose rigid source falls in the ROI: the ROI's box moved by A.
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], dtype=np.float64) @ m[:2].T
        bx0, by0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 2, 0)
        bx1 = min(int(np.ceil(corners[:, 0].max())) + 2, self.size)
        by1 = min(int(np.ceil(corners[:, 1].max())) + 2, self.rows)
        qx = map_x[by0:by1, bx0:bx1] - x0
        qy = map_y[by0:by1, bx0:bx1] - y0
        d = cv2.remap(field, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        for _ in range(self.inverse_steps):
            d = cv2.remap(field, qx - d[..., 0], qy - d[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        map_x[by0:by1, bx0:bx1] -= d[..., 0]
        map_y[by0:by1, bx0:bx1] -= d[..., 1]
        return map_x, map_y


class WarpBackend(Protocol):
    """Warps the person layer and composites it over the still background.

    `composite` returns the top `rows` rows of the frame (below them nothing
    moves); implementations: CpuWarpBackend (OpenCV) and OnnxWarpBackend
    (an ONNX graph with GridSample, for ONNX Runtime or TensorRT).
    """

    rows: int

    def composite(self, warp_points: np.ndarray, head_affine: np.ndarray) -> np.ndarray: ...


class CpuWarpBackend:
    def __init__(self, warp: DenseWarp, source: np.ndarray, alpha: np.ndarray, background: np.ndarray):
        self.warp = warp
        self.rows = warp.rows
        # Person and alpha travel together as one BGRA image: one remap instead of two.
        alpha8 = np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)
        self.source_bgra = np.dstack([source, alpha8])
        self.background = np.ascontiguousarray(background[: self.rows])

    def composite(self, warp_points: np.ndarray, head_affine: np.ndarray) -> np.ndarray:
        map_x, map_y = self.warp.backward_map(warp_points, head_affine)
        moved = cv2.remap(self.source_bgra, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
        alpha = cv2.extractChannel(moved, 3).astype(np.float32) * (1.0 / 255.0)
        # cvtColor drops the alpha channel with SIMD; numpy slicing costs ~50x more here.
        return cv2.blendLinear(cv2.cvtColor(moved, cv2.COLOR_BGRA2BGR), self.background, alpha, 1.0 - alpha)
