"""Per-model latency on each backend at batch 1/4/16, parity with ONNX Runtime on the CPU, and sessions per GPU.

    python benchmarks/gpu_models.py [--backends tensorrt,cuda,cpu] [--batches 1,4,16] [--runs 100] [--json out.json]

Every shipped ONNX model runs its recorded pipeline inputs (avatar_rt/engines/record.py: the real streaming
motion model on speech-like audio, the warp on the bundled portrait at 512), tiled to each batch size along the
graph's batch dimension; a graph whose batch is a literal 1 is timed at batch 1 only (one call per session).
A backend that cannot run here (no GPU, no engine built) is listed with the reason and skipped. Timed: `run`
(host→device copies, execution, device→host) after a warm-up; median and p99 in ms.

Sessions per GPU, from per-stage costs: one video frame of one session costs stage A once, stage B `steps`
times (its sampler steps, from the model's metadata) and the warp once; at batch b a batched stage costs
latency(b)/b per session, an unbatched one latency(1). Sessions = 40 ms × 0.8 (headroom) / that sum, on the
model GPU time alone: feature extraction, rig, encode run on the CPU cores beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FRAME_MS = 40.0
HEADROOM = 0.8


def _list(text: str, kind=str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def time_runner(runner, feeds: list[dict], runs: int, warmup: int = 10) -> dict:
    for i in range(warmup):
        runner.run(feeds[i % len(feeds)])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        runner.run(feeds[i % len(feeds)])
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99)), "runs": runs}


def sessions_per_gpu(costs: dict[str, float], steps: int) -> int:
    per_frame = costs.get("lipsync_stage_a", 0) + steps * costs.get("lipsync_stage_b", 0) + \
        costs.get("portrait_warp", 0)
    return math.floor(FRAME_MS * HEADROOM / per_frame) if per_frame > 0 else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", type=_list, default=["tensorrt", "cuda", "cpu"],
                    help="comma-separated backends to time (default: tensorrt,cuda,cpu)")
    ap.add_argument("--batches", type=lambda t: _list(t, int), default=[1, 4, 16])
    ap.add_argument("--runs", type=int, default=100, help="timed calls per model, backend and batch (default: 100)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    from avatar_rt import engines
    from avatar_rt.bench.machine import machine
    from avatar_rt.engines.gpu import detect
    from avatar_rt.engines.parity import parity
    from avatar_rt.engines.record import record_feeds, tile_batch
    from avatar_rt.engines.select import by_name

    gpu = detect()
    m = machine()
    gpu_text = gpu if isinstance(gpu, str) else f"{gpu.name} (sm {gpu.compute_capability})"
    print(f"machine: {m['cpu']}, {m['cores']} cores; GPU: {gpu_text}; {m['date']}")
    recorded = record_feeds()
    result = {"benchmark": "gpu_models", "machine": m, "gpu": str(gpu), "models": {}, "skipped": {}}
    cpu_runners = {n: engines.open_model(engines.engine_path(n), n, backend=engines.CPU) for n in recorded}
    stage_b = cpu_runners.get("lipsync_stage_b")
    steps = int(stage_b.metadata.get("steps", 2)) if stage_b else 2
    for name in args.backends:
        backend = by_name(name)
        reason = backend.available()
        if reason:
            print(f"{name}: skipped ({reason})")
            result["skipped"][name] = reason
            continue
        for model, feeds in recorded.items():
            try:
                runner = backend.open(engines.engine_path(model), model)
            except engines.EngineError as exc:
                print(f"{name} {model}: skipped ({exc})")
                result["skipped"][f"{name}/{model}"] = str(exc)
                continue
            row = result["models"].setdefault(model, {}).setdefault(name, {})
            if name != "cpu":
                row["parity"] = [p.line() for p in parity(runner, cpu_runners[model], feeds)]
            for b in args.batches:
                wide = [f for f in (tile_batch(x, runner.inputs, b) for x in feeds) if f is not None]
                if not wide:
                    continue
                row[str(b)] = time_runner(runner, wide, args.runs)
            batch_ms = ", ".join(f"b{b} {row[str(b)]['median_ms']:.3f}/{row[str(b)]['p99_ms']:.3f}"
                                 for b in args.batches if str(b) in row)
            print(f"{name:<13}{model:<26}median/p99 ms: {batch_ms}")
            for line in row.get("parity", []):
                print(f"{'':<13}{'':<26}parity vs CPU: {line}")
    capacity = {}
    for name in args.backends:
        for b in args.batches:
            costs = {}
            for model, by_backend in result["models"].items():
                row = by_backend.get(name, {})
                if str(b) in row:
                    costs[model] = row[str(b)]["median_ms"] / b
                elif "1" in row:
                    costs[model] = row["1"]["median_ms"]  # an unbatched graph: one call per session
            if {"lipsync_stage_a", "portrait_warp"} <= set(costs):
                capacity[f"{name}/b{b}"] = sessions_per_gpu(costs, steps)
                where = "GPU" if name != "cpu" else "CPU thread"
                print(f"sessions per {where} ({name}, batch {b}, stage B {steps} steps, model time only): "
                      f"{capacity[f'{name}/b{b}']}")
    result["sessions"] = capacity
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
