"""Warp + composite per frame: the CPU backend (OpenCV remap) against the ONNX graph in ONNX Runtime.

    python benchmarks/warp_backends.py [--frames 500] [--threads 1] [--size 512] [--backend cpu] [--json out.json]

Both backends composite the same poses of one portrait (the bundled one unless
`--avatar`): every parameter except the blinks drifts smoothly within ±35 % of
its range (a sum of three sinusoids; articulation at 2–6 Hz, the rest at
0.1–0.6 Hz), so the local field is on in every frame and the head moves.
Only `backend.composite(warp_points, head_affine)` is timed, after a warm-up;
the rig runs up front. One thread by default: `cv2.setNumThreads` for the CPU
backend, `intra_op_num_threads` for ONNX Runtime, and the BLAS/OpenMP pools
sized before NumPy loads. Also printed: how far the ONNX frames are from the
CPU ones over the same poses (grey levels, uint8 BGR).
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads_from_argv() -> int:
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 1


# Thread pools are sized when NumPy/OpenCV load, so this happens before their import.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(_threads_from_argv())

import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from machine import machine  # noqa: E402  (benchmarks/machine.py, beside this script)




def trajectory(n: int, fps: float, seed: int) -> list:
    from avatar_rt.motion.params import PARAMS, MotionParams

    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    columns = {}
    for spec in PARAMS:
        if spec.name.startswith("blink"):
            continue  # lids are the eyelid layer's, not the warp's
        fast = spec.group == "articulation"
        freqs = rng.uniform(2.0, 6.0, 3) if fast else rng.uniform(0.1, 0.6, 3)
        phases = rng.uniform(0, 2 * math.pi, 3)
        wave = sum(np.sin(2 * math.pi * f * t + p) for f, p in zip(freqs, phases)) / 3
        span = 0.35 * (spec.high - spec.low)
        values = wave * span if spec.low < 0 < spec.high else np.abs(wave) * span * (1.0 if spec.high > 0 else -1.0)
        columns[spec.name] = np.clip(values, spec.low, spec.high)
    return [MotionParams(**{name: float(col[i]) for name, col in columns.items()}) for i in range(n)]


def stats(ms: np.ndarray) -> dict:
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def time_backend(backend, poses: list, warmup: int) -> tuple[np.ndarray, list[np.ndarray]]:
    clock = time.perf_counter
    seconds = np.empty(len(poses))
    frames = []
    for i, pose in enumerate(poses):
        t0 = clock()
        frame = backend.composite(pose.warp_points, pose.head_affine)
        seconds[i] = clock() - t0
        frames.append(frame)
    return seconds[warmup:] * 1000, frames[warmup:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--avatar", type=Path, help="portrait photo (default: the bundled one)")
    parser.add_argument("--size", type=int, default=512, help="portrait size in pixels (default 512)")
    parser.add_argument("--frames", type=int, default=500, help="timed frames after warm-up (default 500)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed frames first (default 30)")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV / ONNX Runtime / BLAS threads (default 1)")
    parser.add_argument("--backend", default="cpu", choices=("auto", "cpu", "cuda", "ort-tensorrt", "tensorrt"),
                        help="where the ONNX warp runs (avatar_rt.engines; default: cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import cv2
    import onnxruntime as ort

    cv2.setNumThreads(args.threads)
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.render.renderer import PortraitRenderer
    from avatar_rt.engines import choose
    from avatar_rt.render.warp_onnx import OnnxWarpBackend
    from avatar_rt.rig.landmark_rig import LandmarkRig

    avatar = args.avatar or DEFAULT_PORTRAIT
    portrait = load_portrait(avatar, size=args.size)
    rig = LandmarkRig(portrait)
    renderer = PortraitRenderer(portrait)
    cpu = renderer.backend
    onnx = OnnxWarpBackend(renderer.warp, renderer.source, renderer.alpha, renderer.background,
                           backend=choose(args.backend)[0], intra_op_num_threads=args.threads)
    poses = [rig.pose(p) for p in trajectory(args.warmup + args.frames, 25.0, args.seed)]

    cpu_ms, cpu_frames = time_backend(cpu, poses, args.warmup)
    onnx_ms, onnx_frames = time_backend(onnx, poses, args.warmup)
    diff = np.stack([np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(cpu_frames, onnx_frames)])

    m = machine()
    result = {
        "benchmark": "warp_backends", "machine": m, "avatar": str(avatar), "size": portrait.size,
        "rows": cpu.rows, "threads": args.threads, "frames": args.frames, "warmup": args.warmup,
        "cv2": cv2.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__,
        "onnx_providers": onnx.providers,
        "backends": {"cpu": stats(cpu_ms), "onnx": stats(onnx_ms)},
        "parity": {"mean_abs": float(diff.mean()), "p99_abs": float(np.percentile(diff, 99)),
                   "p999_abs": float(np.percentile(diff, 99.9)), "max_abs": int(diff.max()),
                   "share_differing": float((diff > 0).mean())},
    }
    thread_word = "one thread" if args.threads == 1 else f"{args.threads} threads"
    print(f"warp + composite, {portrait.size}x{portrait.size} ({cpu.rows} moving rows), {args.frames} frames "
          f"after {args.warmup} warm-up, {thread_word}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, OpenCV {cv2.__version__}, "
          f"ONNX Runtime {ort.__version__} ({', '.join(onnx.providers)}), {m['date']}, load {m['load_1min']}")
    print(f"{'backend':<8}{'median ms':>11}{'p99 ms':>9}{'mean ms':>9}{'max ms':>9}")
    for name, s in result["backends"].items():
        print(f"{name:<8}{s['median_ms']:>11.2f}{s['p99_ms']:>9.2f}{s['mean_ms']:>9.2f}{s['max_ms']:>9.2f}")
    par = result["parity"]
    print(f"onnx vs cpu frames: mean |diff| {par['mean_abs']:.5f} grey levels, p99 {par['p99_abs']:g}, "
          f"p99.9 {par['p999_abs']:g}, max {par['max_abs']}, {100 * par['share_differing']:.3f} % of values differ")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
