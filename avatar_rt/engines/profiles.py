"""TensorRT optimisation profiles from the shapes an ONNX file declares.

A literal dimension stays fixed (min = opt = max); a symbolic one takes its range from its name, so inputs
that share a dimension (the warp's `width` in `source`, `background` and `grid_x`) always agree. Batch
dimensions (`BATCH_DIMS`: one row per session) range 1…max_batch with opt = max_batch: a GPU server is sized to
run full, and that is the case whose latency decides sessions per GPU; smaller batches still run, a little
less tuned. A graph whose batch is a literal 1 simply gets no batch range, so this works before and after the
export makes the lip-sync stages' batch symbolic.
"""

from __future__ import annotations

from collections.abc import Sequence

from avatar_rt.engines.backend import TensorSpec
from avatar_rt.engines.manifest import EngineError

BATCH_DIMS = frozenset({"batch", "batch_size", "n", "N", "sessions"})

# (min, opt, max) per symbolic dimension name of the shipped graphs, and why:
DIM_RANGES: dict[str, tuple[int, int, int]] = {
    # Stage A's mel frames per call: 10 ms hops, so a 40 ms video frame brings 4 (opt); a late network burst a
    # few hundred ms; 256 (2.56 s) leaves room for offline callers that feed chunks.
    "frames": (1, 4, 256),
    # The warp's per-avatar sizes follow `--size` (a multiple of 16 in 128…1024, default 512). `rows` (the rows
    # the head can move, from the top), the local field's ROI and its half-resolution grid are at most the image;
    # opt is what the bundled portrait gives at 512 (rows 429, ROI 299×260, field 150×130; at 256: 215, 152×131,
    # 76×66).
    "height": (128, 512, 1024),
    "width": (128, 512, 1024),
    "rows": (16, 429, 1024),
    "roi_h": (1, 299, 1024),
    "roi_w": (1, 260, 1024),
    "half_h": (1, 150, 512),
    "half_w": (1, 130, 512),
}

Shape = tuple[int, ...]


def dim_range(dim: int | str | None, *, max_batch: int, where: str) -> tuple[int, int, int]:
    if isinstance(dim, int) and dim > 0:
        return dim, dim, dim
    if isinstance(dim, str) and dim in BATCH_DIMS:
        return 1, max_batch, max_batch
    if isinstance(dim, str) and dim in DIM_RANGES:
        return DIM_RANGES[dim]
    raise EngineError(f"{where}: dimension {dim!r} has no profile range; name it in avatar_rt/engines/profiles.py "
                      "(BATCH_DIMS for a batch, DIM_RANGES for anything else) or export it with a fixed size")


def profile_shapes(inputs: Sequence[TensorSpec], *, max_batch: int,
                   model: str = "model") -> dict[str, tuple[Shape, Shape, Shape]]:
    """{input name: (min shape, opt shape, max shape)} for one optimisation profile covering batch 1…max_batch."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    shapes = {}
    for spec in inputs:
        ranges = [dim_range(d, max_batch=max_batch, where=f"{model} input {spec.name!r}") for d in spec.shape]
        shapes[spec.name] = tuple(tuple(r[k] for r in ranges) for k in range(3))
    return shapes


def batch_axes(spec: TensorSpec) -> list[int]:
    """The axes of `spec` that are a batch dimension (empty for a graph whose batch is a literal)."""
    return [i for i, d in enumerate(spec.shape) if isinstance(d, str) and d in BATCH_DIMS]
