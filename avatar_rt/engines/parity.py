"""Does a backend give what ONNX Runtime on the CPU gives, on the same recorded inputs?

Float outputs hold parity when the worst absolute error is within 1 % of the output's scale (max |reference|,
at least 1): FP16 carries ~3 significant digits, so a layer that loses more than that shows up here; image
outputs (uint8) when the mean differs by ≤ 0.5 grey levels and the 99th percentile by ≤ 2, the bar the ONNX
warp holds against the OpenCV one (tests/test_warp_onnx.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avatar_rt.engines.backend import Runner

FLOAT_RTOL = 0.01
IMAGE_MEAN_MAX = 0.5
IMAGE_P99_MAX = 2.0


@dataclass(frozen=True)
class OutputParity:
    name: str
    max_abs: float
    mean_abs: float
    bound: float  # what max_abs (floats) or p99 (images) may reach
    p99_abs: float
    ok: bool

    def line(self) -> str:
        mark = "ok" if self.ok else "FAILS"
        return f"{self.name}: max {self.max_abs:.3g}, mean {self.mean_abs:.3g}, p99 {self.p99_abs:.3g} " \
               f"(bound {self.bound:.3g}) {mark}"


def compare(name: str, got: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> OutputParity:
    diffs = [np.abs(g.astype(np.float64) - r.astype(np.float64)).ravel() for g, r in zip(got, ref)]
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    max_abs, mean_abs, p99 = float(d.max()), float(d.mean()), float(np.percentile(d, 99))
    if ref and ref[0].dtype == np.uint8:
        return OutputParity(name, max_abs, mean_abs, IMAGE_P99_MAX, p99, mean_abs <= IMAGE_MEAN_MAX
                            and p99 <= IMAGE_P99_MAX)
    scale = max([1.0] + [float(np.abs(r).max()) for r in ref if r.size])
    bound = FLOAT_RTOL * scale
    return OutputParity(name, max_abs, mean_abs, bound, p99, bool(np.isfinite(max_abs)) and max_abs <= bound)


def parity(candidate: Runner, reference: Runner, feeds: Sequence[dict[str, np.ndarray]]) -> list[OutputParity]:
    """Per output, `candidate` against `reference` over every recorded feed."""
    names = [o.name for o in reference.outputs]
    got = [candidate.run(f, names) for f in feeds]
    ref = [reference.run(f, names) for f in feeds]
    return [compare(n, [g[n] for g in got], [r[n] for r in ref]) for n in names]
