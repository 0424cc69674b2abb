"""The warp + composite as an ONNX graph in ONNX Runtime: the twin of `CpuWarpBackend`.

The graph (engines/portrait_warp.onnx, built by `python -m export.warp_graph`,
math documented there) holds no avatar: `avatar_inputs` lays out the per-avatar
tensors once, from the same `DenseWarp` / `LocalField` the CPU backend uses, and
per frame only the landmarks and the head affine go in. It runs on any backend
(avatar_rt.engines: ONNX Runtime CPU/CUDA/TensorRT providers, native TensorRT
engines built from the same file by `avatar-rt engines build`).
"""

from __future__ import annotations

import numpy as np

from avatar_rt import engines
from avatar_rt.engines import Backend
from avatar_rt.render.warp import DenseWarp

ENGINE_NAME = "portrait_warp"


def _nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.astype(np.float32).transpose(2, 0, 1)[None])


def source_bgra(source: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The person layer with its alpha quantized to 8 bits, as the CPU backend remaps it."""
    alpha8 = np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)
    return np.dstack([source, alpha8])


def field_grid(size: tuple[int, int], half_shape: tuple[int, int]) -> np.ndarray:
    """GridSample grid (1, h, w, 2) that upsamples the half-res field (half_shape = (hh, hw)) to
    `size` = (w, h) exactly as cv2.resize(INTER_LINEAR) does.

    OpenCV reads output pixel i at s = (i + ½)·(n_half / n) − ½ of the input,
    clamped to [0, n_half − 1]; the clamped s, normalized for align_corners=0
    as (2s + 1)/n_half − 1, never reaches past the edge pixels, so GridSample's
    padding mode plays no part (the graph uses 'zeros', ONNX Runtime's fast path).
    """
    (w, h), (hh, hw) = size, half_shape

    def axis(n: int, n_half: int) -> np.ndarray:
        s = np.clip((np.arange(n, dtype=np.float64) + 0.5) * (n_half / n) - 0.5, 0, n_half - 1)
        return (2 * s + 1) / n_half - 1

    grid = np.stack(np.broadcast_arrays(axis(w, hw)[None, :], axis(h, hh)[:, None]), axis=-1)
    return np.ascontiguousarray(grid[None].astype(np.float32))


def avatar_inputs(warp: DenseWarp, source: np.ndarray, alpha: np.ndarray,
                  background: np.ndarray) -> dict[str, np.ndarray]:
    """Every per-avatar graph input, computed once (names, dtypes and shapes as in engines/manifest.json)."""
    local = warp.local
    rows = warp.rows
    x0, y0, x1, y1 = local.roi
    if (x1 - x0, y1 - y0) != tuple(local.size):
        raise ValueError(f"LocalField roi {local.roi} and size {local.size} disagree")
    return {
        "rest_points": np.ascontiguousarray(warp.rest, dtype=np.float32),
        "source": _nchw(source_bgra(source, alpha)),
        "background": _nchw(background[:rows]),
        "grid_x": np.ascontiguousarray(warp.xs[None, :], dtype=np.float32),
        "grid_y": np.ascontiguousarray(warp.ys[:, None], dtype=np.float32),
        "head_w": np.ascontiguousarray(np.reshape(warp.head_w, (rows, 1)), dtype=np.float32),
        "field_weights": np.ascontiguousarray(local.weights.transpose(2, 0, 1), dtype=np.float32),
        "field_vertex_ids": np.ascontiguousarray(local.vertex_ids.transpose(2, 0, 1), dtype=np.int64),
        "num_moving": np.array([local.num_moving], dtype=np.int64),
        "roi": np.array(local.roi, dtype=np.float32),
        "field_grid": field_grid(local.size, local.weights.shape[:2]),
    }


class OnnxWarpBackend:
    """`WarpBackend` on an engines backend: `composite(warp_points, head_affine)` → uint8 (rows, size, 3).
    `backend`: default the process's choice (`avatar_rt.engines.use`)."""

    def __init__(self, warp: DenseWarp, source: np.ndarray, alpha: np.ndarray, background: np.ndarray,
                 rows: int | None = None, backend: Backend | None = None,
                 intra_op_num_threads: int = 1, model_path=None):
        if rows is not None and rows != warp.rows:
            raise ValueError(f"the warp's maps cover {warp.rows} rows, not {rows}")
        self.warp = warp
        self.rows = warp.rows
        self.num_points = warp.rest.shape[0]
        self._avatar = avatar_inputs(warp, source, alpha, background)
        path = model_path or engines.engine_path(ENGINE_NAME)
        self.session = engines.open_model(path, "warp model", threads=intra_op_num_threads, backend=backend)
        meta = self.session.metadata
        steps = getattr(warp, "inverse_steps", 1)
        if int(meta.get("inverse_steps", -1)) != steps:
            raise engines.EngineError(
                f"{path} inverts the local field in {meta.get('inverse_steps', '?')} fixed-point steps, the warp in "
                f"{steps}: rebuild it with `python -m export.warp_graph --inverse-steps {steps}`")
        expected = engines.input_names(self.session)
        missing = expected - set(self._avatar) - {"warp_points", "head_affine"}
        if missing:
            raise engines.EngineError(f"{path} wants inputs this runtime does not provide: {sorted(missing)}")

    @property
    def providers(self) -> list[str]:
        """ONNX Runtime's providers for this model, or the native backend's name."""
        return list(getattr(self.session, "providers", [self.session.backend]))

    def composite(self, warp_points: np.ndarray, head_affine: np.ndarray) -> np.ndarray:
        points = np.ascontiguousarray(warp_points, dtype=np.float32)
        affine = np.ascontiguousarray(head_affine, dtype=np.float32)
        if points.shape != (self.num_points, 2) or affine.shape != (2, 3):
            raise ValueError(f"expected warp_points ({self.num_points}, 2) and head_affine (2, 3), "
                             f"got {points.shape} and {affine.shape}")
        feeds = dict(self._avatar, warp_points=points, head_affine=affine)
        return self.session.run(feeds, ["frame"])["frame"]
