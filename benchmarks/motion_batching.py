"""Cross-session batching of the motion models: 4 sessions' stage A + B in one call vs one session's call.

    python benchmarks/motion_batching.py [--engines DIR] [--ticks 600] [--sessions 4]

Drives `--sessions` lip-sync sessions (stage A + stage B student, the runtime's
LipSyncModel and BehaviourModel) tick by tick through avatar_rt.motion.batching.step_all,
and, interleaved in the same loop, one more session alone; each tick's stage A call and
stage B calls (the sampler's 2 steps) are timed. Printed: median and p99 per tick of
the N sessions' calls together and of the one session's call, their ratio (the issue's
criterion: < 2×), the N sessions called one by one for reference, and the largest
difference between every batched session's motion and the same session stepped alone
(must be 0 up to float noise, ≤ 1e-6).

The audio is a synthetic voice (harmonics under moving formants, syllables and pauses):
the cost does not depend on what is said. Models: `--engines DIR` (the exporter's, with a
symbolic batch), default engines/; a stage A exported before issue 17 (a literal batch of
1) is given a symbolic batch in memory — its operators are batch-generic, the weights
and costs are the shipped model's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import machine  # noqa: E402

FPS = 25.0
SLICE = 640
SR = 16000


def synthetic_voice(seconds: float, seed: int) -> np.ndarray:
    """Syllables (120–220 ms) of a buzzy voice under moving formants, with pauses; int16 16 kHz."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * SR), np.float32)
    t = 0
    while t < len(out):
        n = int(rng.uniform(0.12, 0.22) * SR)
        if rng.random() < 0.15:
            t += int(rng.uniform(0.2, 0.6) * SR)
            continue
        k = np.arange(min(n, len(out) - t))
        f0 = rng.uniform(90, 220)
        formants = rng.uniform([300, 900], [900, 2400])
        sig = sum(np.sin(2 * np.pi * f0 * h * k / SR) / h * (1 + 4 * np.exp(-((f0 * h - formants) ** 2).min() / 4e4))
                  for h in range(1, 25))
        out[t:t + len(k)] = sig * np.hanning(len(k)) * 2500
        t += len(k)
    return np.clip(out + rng.normal(0, 30, len(out)), -32768, 32767).astype(np.int16)


def batchable_stage_a(path: Path, tmp: Path) -> Path:
    """`path` if its batch is symbolic, else a copy whose literal batch dims are the symbolic `batch`."""
    import onnx  # noqa: PLC0415

    model = onnx.load(str(path))
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    if first.dim_param == "batch":
        return path
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        axis = 1 if value.name.endswith("state_gru") else 0  # ONNX GRU state: (directions, batch, hidden)
        dims[axis].Clear()
        dims[axis].dim_param = "batch"
    out = tmp / path.name
    onnx.save(model, str(out))
    return out


def bare_calls(path_a: Path, path_b: Path, n: int, repeats: int = 400) -> dict[str, tuple[dict, dict]]:
    """The two networks' ONNX Runtime calls alone (CPU, one thread, as the runtime opens them) at batch 1 and
    batch n (stage A: 4 new frames, a 25 fps tick; stage B: one sampler step), interleaved; median and p99 ms."""
    import onnxruntime as ort  # noqa: PLC0415

    rng = np.random.default_rng(0)
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    session_a, session_b = (ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
                            for p in (path_a, path_b))

    def feed(session, batch: int) -> dict[str, np.ndarray]:
        return {i.name: (0.3 * rng.standard_normal([batch if d == "batch" or d == "n" else 4 if d == "frames" else d
                                                     for d in i.shape])).astype(np.float32)
                for i in session.get_inputs()}

    out = {}
    for name, session in (("stage A", session_a), ("stage B", session_b)):
        feeds = (feed(session, 1), feed(session, n))
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(repeats):
            for k in (0, 1):
                t = time.perf_counter()
                session.run(None, feeds[k])
                times[k].append((time.perf_counter() - t) * 1e3)
        out[name] = tuple({"median_ms": round(float(np.median(v)), 4), "p99_ms": round(float(np.percentile(v, 99)), 4)}
                          for v in times)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", type=Path, default=REPO / "engines")
    ap.add_argument("--ticks", type=int, default=600, help="video frames (25 fps) per session")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "motion_batching.json")
    args = ap.parse_args(argv)

    from avatar_rt.motion import batching  # noqa: PLC0415
    from avatar_rt.motion.behaviour import BehaviourModel  # noqa: PLC0415
    from avatar_rt.motion.behaviour import load_session as load_b  # noqa: PLC0415
    from avatar_rt.motion.lipsync import LipSyncModel  # noqa: PLC0415
    from avatar_rt.motion.lipsync import load_session as load_a  # noqa: PLC0415

    info = machine()
    print(f"machine: {info}")
    tmp = tempfile.TemporaryDirectory()
    a_path = batchable_stage_a(args.engines / "lipsync_stage_a.onnx", Path(tmp.name))
    b_path = args.engines / "lipsync_stage_b.onnx"
    session_a, session_b = load_a(a_path), load_b(b_path)

    def model(seed: int) -> LipSyncModel:
        return LipSyncModel(FPS, session=session_a, behaviour=BehaviourModel(session_b, seed=seed),
                            engines_dir=args.engines)

    n = args.sessions
    audio = [synthetic_voice(args.ticks / FPS + 1, seed=k) for k in range(n)]
    group, alone, single = [model(k) for k in range(n)], [model(k) for k in range(n)], model(0)
    moved_group = [[] for _ in range(n)]
    moved_alone = [[] for _ in range(n)]
    t_group, t_single, t_one_by_one = [], [], []
    parts: dict[str, list[float]] = {f"{who}_{stage}": [] for who in ("batched", "single")
                                     for stage in ("stage_a", "stage_b")}
    for tick in range(args.ticks):
        chunks = [a[tick * SLICE:(tick + 1) * SLICE] for a in audio]
        flags = [bool(np.abs(c).mean() > 200) for c in chunks]
        tg: dict[str, float] = {}
        out = batching.step_all([batching.StepRequest(m, c, f) for m, c, f in zip(group, chunks, flags)], tg)
        ts: dict[str, float] = {}
        batching.step_all([batching.StepRequest(single, chunks[0], flags[0])], ts)
        to: dict[str, float] = {}
        for k in range(n):
            moved_alone[k].append(batching.step_all([batching.StepRequest(alone[k], chunks[k], flags[k])], to)[0]
                                  .to_vector())
            moved_group[k].append(out[k].to_vector())
        for stage in ("stage_a", "stage_b"):
            parts[f"batched_{stage}"].append(tg.get(stage, 0.0))
            parts[f"single_{stage}"].append(ts.get(stage, 0.0))
        t_group.append(sum(tg.values()))
        t_single.append(sum(ts.values()))
        t_one_by_one.append(sum(to.values()))
    warm = slice(25, None)  # the first second: the delay line fills, stage B starts
    stats = {}
    for name, values in (("batched", t_group), ("single", t_single), ("one_by_one", t_one_by_one),
                         *parts.items()):
        v = np.array(values[warm]) * 1e3
        stats[name] = {"median_ms": round(float(np.median(v)), 4), "p99_ms": round(float(np.percentile(v, 99)), 4)}
    diff = max(float(np.abs(np.array(moved_group[k]) - np.array(moved_alone[k])).max()) for k in range(n))
    moved = max(float(np.abs(np.array(moved_group[k])).max()) for k in range(n))
    ratio_med = stats["batched"]["median_ms"] / stats["single"]["median_ms"]
    ratio_p99 = stats["batched"]["p99_ms"] / stats["single"]["p99_ms"]
    print(f"stage A + B calls per tick ({args.ticks - 25} ticks, stage A {a_path.name}, behaviour: 2-step student):")
    print(f"  1 session alone:              median {stats['single']['median_ms']:.3f} ms, "
          f"p99 {stats['single']['p99_ms']:.3f} ms")
    print(f"  {n} sessions in one call:       median {stats['batched']['median_ms']:.3f} ms, "
          f"p99 {stats['batched']['p99_ms']:.3f} ms  → {ratio_med:.2f}× / {ratio_p99:.2f}× one session's call "
          f"({'PASS' if ratio_med < 2 else 'FAIL'}: < 2×)")
    print(f"  {n} sessions one call each:     median {stats['one_by_one']['median_ms']:.3f} ms, "
          f"p99 {stats['one_by_one']['p99_ms']:.3f} ms")
    for stage in ("stage_a", "stage_b"):
        b, o = stats[f"batched_{stage}"], stats[f"single_{stage}"]
        print(f"  {stage.replace('_', ' ')} alone: {n} sessions median {b['median_ms']:.3f} ms vs one "
              f"{o['median_ms']:.3f} ms ({b['median_ms'] / max(o['median_ms'], 1e-9):.2f}×)")
    calls = bare_calls(a_path, b_path, n)
    tmp.cleanup()
    for name, (one, many) in calls.items():
        print(f"  {name} network call alone (ONNX Runtime run, no bookkeeping): batch 1 median "
              f"{one['median_ms']:.3f} / p99 {one['p99_ms']:.3f} ms, batch {n} median {many['median_ms']:.3f} / "
              f"p99 {many['p99_ms']:.3f} ms ({many['median_ms'] / one['median_ms']:.2f}×)")
    print(f"  outputs: max |batched − alone| {diff:.1e} over {n} sessions × {args.ticks} frames "
          f"({'identical' if diff <= 1e-6 else 'DIFFERENT'}; largest motion value {moved:.2f})")
    print(f"  load average at the end: {os.getloadavg()}")
    result = {"machine": info, "ticks": args.ticks, "sessions": n, "stage_a": str(a_path.name), **stats,
              "bare_calls": {k: {"batch_1": v[0], f"batch_{n}": v[1]} for k, v in calls.items()},
              "ratio_median": round(ratio_med, 3), "ratio_p99": round(ratio_p99, 3), "max_abs_diff": diff,
              "load_end": os.getloadavg()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if ratio_med < 2 and diff <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
