"""Re-export trained lip-sync models without retraining: stage A from its checkpoint, stage B from its own graph.

Stage A: `train` saves WORK/stage_a.pt (model state, feature statistics, config, the
phone front end's metadata); `stage_a_from_checkpoint` rebuilds the network from it and
`export_stage_a` writes the streaming graph again with today's exporter (a symbolic
batch) and the metadata of the graph it replaces (training and held-out metrics), then
checks that the new graph gives the old graph's numbers at batch 1, and that B streams
in one call give each stream's own numbers.

Stage B keeps no checkpoint: its graph's initializers *are* its float32 weights
(stage_b.build_onnx writes them unchanged), so `stage_b_from_onnx` reads them back
into the torch network, and the export's torch parity check runs as on a fresh one.
Its `stage_a_sha256` is re-pointed at the re-exported stage A when it named the old one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from avatar_rt.audio.features import N_MELS, FeatureStats
from avatar_rt.engines import sha256
from export import parity
from export.lipsync import stage_a, stage_b

# Keys build_onnx writes itself; the rest of the old graph's metadata (training, metrics, front end) is carried.
_BUILT_KEYS = {"right_context_hops", "hop_ms", "feature_config", "feature_stats", "articulation", "visemes",
               "phonemes", "streaming"}


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def stage_a_from_checkpoint(checkpoint: Path) -> tuple[stage_a.StageA, FeatureStats, dict]:
    """The trained network, its feature statistics and the checkpoint's other fields."""
    ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    sd = ckpt["model"]
    cfg = ckpt.get("config", {})
    n_phones = int(sd["inp.weight"].shape[1]) - N_MELS
    model = stage_a.StageA(channels=int(sd["inp.weight"].shape[0]), hidden=int(sd["gru.weight_hh_l0"].shape[1]),
                           n_phones=n_phones)
    model.load_state_dict(sd)
    model.eval()
    if cfg.get("phones") is not None and bool(cfg["phones"]) != bool(n_phones):
        raise ValueError(f"{checkpoint}: config says phones={cfg['phones']}, the weights have {n_phones} phone inputs")
    return model, FeatureStats.from_json(ckpt["stats"]), ckpt


def check_inputs(model: stage_a.StageA, frames: int = 160, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for the parity checks: normalised features are ~N(0, 1) per bin, so random ones exercise every
    weight; the phone posteriors' rows likewise (they are normalised log posteriors)."""
    rng = np.random.default_rng(seed)
    out = {"mel": rng.standard_normal((frames, N_MELS)).astype(np.float32)}
    if model.n_phones:
        out["phones"] = rng.standard_normal((frames, model.n_phones)).astype(np.float32)
    return out


def _run(path_or_bytes, inputs: dict[str, np.ndarray], chunks: list[int]) -> dict[str, np.ndarray]:
    import onnxruntime as ort  # noqa: PLC0415

    sess = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    return stage_a.run_onnx_chunked(sess, inputs, chunks)


def export_stage_a(checkpoint: Path, out_dir: Path, write_manifest: bool = True, log=print) -> Path:
    """Re-export OUT/lipsync_stage_a.onnx from `checkpoint`; with an old graph there, its metadata is kept and its
    numbers must come out identical (batch 1) before the new one counts."""
    model, stats, ckpt = stage_a_from_checkpoint(checkpoint)
    path = out_dir / f"{stage_a.NAME}.onnx"
    old_bytes = path.read_bytes() if path.is_file() else None
    if old_bytes is not None:
        meta = {k: v for k, v in _metadata(path).items() if k not in _BUILT_KEYS}
    else:
        meta = {"version": stage_a.VERSION, "parameters": str(stage_a.parameter_count(model)),
                "validation": json.dumps(ckpt.get("metrics", {}))}
        if "phone_features" in ckpt:
            meta["phone_features"] = ckpt["phone_features"]
    check = check_inputs(model)
    new_path = stage_a.export(model, stats, out_dir, meta, check, write_manifest)
    chunks = [7, 1, 4, 40, 100, 8]
    new = _run(str(new_path), check, chunks)
    if old_bytes is not None:
        old = _run(old_bytes, check, chunks)
        parity.measure(f"{stage_a.NAME} (batch 1)", [new[k] for k in sorted(new)], [old[k] for k in sorted(old)],
                       reference="the graph it replaces", bound=1e-6, log=log)
    check_batch(new_path, model, log=log)
    return new_path


def check_batch(path: Path, model: stage_a.StageA, streams: int = 4, log=print) -> dict:
    """B different streams in one call, chunk by chunk with their states stacked, against each stream alone."""
    import onnxruntime as ort  # noqa: PLC0415

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [check_inputs(model, 60, seed=s) for s in range(streams)]
    alone = [stage_a.run_onnx_chunked(sess, x, [3, 1, 16, 40]) for x in inputs]
    state = {i.name: np.zeros([streams if d == stage_a.BATCH else d for d in i.shape], np.float32)
             for i in sess.get_inputs() if i.name.startswith("state_")}
    names = [o.name for o in sess.get_outputs()]
    heads = ("articulation", "viseme_probs", "phoneme_probs")
    together: dict[str, list[np.ndarray]] = {h: [] for h in heads}
    t = 0
    for n in (3, 1, 16, 40):
        feed = {k: np.stack([x[k][t:t + n] for x in inputs]) for k in inputs[0]}
        res = dict(zip(names, sess.run(None, {**feed, **state})))
        state = {k: res["next_" + k] for k in state}
        for h in heads:
            together[h].append(res[h])
        t += n
    got = [np.concatenate(together[h], axis=1)[b] for b in range(streams) for h in heads]
    ref = [alone[b][h] for b in range(streams) for h in heads]
    return parity.measure(f"{stage_a.NAME} ({streams} streams in one call)", got, ref,
                          reference="each stream alone", bound=1e-5, log=log)


def stage_b_from_onnx(path: Path) -> stage_b.VelocityNet:
    """The velocity network whose float32 weights `path`'s initializers hold (stage_b.build_onnx's names)."""
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    hidden = sorted({k.split(".")[1] for k in weights if k.startswith("hidden.")}, key=int)
    w_in = weights["inp.w"]  # (in, hidden): torch's weight transposed
    dim = weights["out.w"].shape[1]
    context = w_in.shape[0] - dim - 1 - 2 * len(stage_b.TIME_FREQS)
    net = stage_b.VelocityNet(dim=dim, context=context, hidden=w_in.shape[1], layers=len(hidden) + 1)
    sd = {"freqs": torch.from_numpy(weights["freqs"][0].copy())}
    for prefix in ["inp", "out"] + [f"hidden.{i}" for i in hidden]:
        sd[f"{prefix}.weight"] = torch.from_numpy(weights[f"{prefix}.w"].T.copy())
        sd[f"{prefix}.bias"] = torch.from_numpy(weights[f"{prefix}.b"].copy())
    net.load_state_dict(sd)
    return net.eval()


def export_stage_b(out_dir: Path, stage_a_path: Path | None = None, write_manifest: bool = True,
                   log=print) -> list[Path]:
    """Re-export the teacher and the student found in OUT with today's exporter; `stage_a_sha256` follows
    `stage_a_path` (re-exported: same weights, new file) when given."""
    paths = []
    for name in (stage_b.NAME_TEACHER, stage_b.NAME_STUDENT):
        path = out_dir / f"{name}.onnx"
        if not path.is_file():
            log(f"{name}: no {path}, skipped (train it: python -m export.lipsync.stage_b)")
            continue
        old_bytes = path.read_bytes()
        net = stage_b_from_onnx(path)
        meta = _metadata(path)
        if stage_a_path is not None:
            meta["stage_a_sha256"] = sha256(stage_a_path)
        new_path = stage_b.export(net, name, out_dir, meta, write_manifest)
        _same_velocity(old_bytes, new_path, name, log)
        paths.append(new_path)
    return paths


def _same_velocity(old_bytes: bytes, new_path: Path, name: str, log) -> None:
    import onnxruntime as ort  # noqa: PLC0415

    old = ort.InferenceSession(old_bytes, providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(str(new_path), providers=["CPUExecutionProvider"])
    c = new.get_inputs()[2].shape[1]
    d = new.get_inputs()[0].shape[1]
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((16, d)).astype(np.float32), "t": rng.random((16, 1)).astype(np.float32),
            "context": rng.standard_normal((16, c)).astype(np.float32)}
    parity.measure(f"{name} (re-exported)", new.run(None, feed)[0], old.run(None, feed)[0],
                   reference="the graph it replaces", bound=1e-6, log=log)

