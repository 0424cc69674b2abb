"""Export parity: how far an exported graph's outputs are from its reference (PyTorch, or the CPU code it twins).

Every exporter measures the same two numbers — the largest and the mean absolute
difference over all output values — prints them in one format, writes them into the
model's manifest entry (`parity`), and fails the export past its bound.
"""

from __future__ import annotations

import numpy as np


class ParityError(RuntimeError):
    """An exported graph disagrees with its reference by more than the exporter's bound."""


def measure(name: str, got: np.ndarray | list[np.ndarray], ref: np.ndarray | list[np.ndarray], *,
            reference: str, bound: float, mean_bound: float | None = None, log=print) -> dict:
    """Max and mean |got − ref| over every value (lists are compared pairwise and pooled); printed, returned as
    the manifest's `parity` record, a ParityError past `bound` (or past `mean_bound` for the mean)."""
    got_l = got if isinstance(got, list) else [got]
    ref_l = ref if isinstance(ref, list) else [ref]
    if len(got_l) != len(ref_l):
        raise ValueError(f"{name}: {len(got_l)} outputs against {len(ref_l)} references")
    diffs = []
    for g, r in zip(got_l, ref_l):
        g, r = np.asarray(g, np.float64), np.asarray(r, np.float64)
        if g.shape != r.shape:
            raise ParityError(f"{name}: output shape {g.shape}, reference {r.shape}")
        diffs.append(np.abs(g - r).ravel())
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    record = {"reference": reference, "max_abs": float(d.max()), "mean_abs": float(d.mean()), "bound": bound,
              "values": int(d.size)}
    if mean_bound is not None:
        record["mean_bound"] = mean_bound
    log(f"parity {name} vs {reference}: max |Δ| {record['max_abs']:.2e}, mean |Δ| {record['mean_abs']:.2e} "
        f"over {d.size} values (bound {bound:.0e}{'' if mean_bound is None else f', mean {mean_bound:.0e}'})")
    if not np.isfinite(d).all() or record["max_abs"] > bound:
        raise ParityError(f"{name}: ONNX disagrees with {reference}: max |Δ| {record['max_abs']:.2e} > {bound:.0e}")
    if mean_bound is not None and record["mean_abs"] > mean_bound:
        raise ParityError(f"{name}: ONNX disagrees with {reference}: mean |Δ| {record['mean_abs']:.2e} > "
                          f"{mean_bound:.0e}")
    return record
