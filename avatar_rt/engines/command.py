"""`--backend` for serve/render/bench, and `avatar-rt engines build`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avatar_rt.engines.select import BACKEND_CHOICES

BACKEND_HELP = ("where the models run: auto (the best available: native TensorRT engines, then ONNX Runtime's "
                "TensorRT provider, its CUDA provider, the CPU; the log says why), cpu (ONNX Runtime, the default "
                "everywhere without an NVIDIA GPU), cuda, ort-tensorrt, or tensorrt (engines from `avatar-rt "
                "engines build`). A backend that cannot run here is a startup error. Default: auto")


def add_backend_argument(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default=default, help=BACKEND_HELP)


def _max_batch(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("--max-batch must be between 1 and 256")
    return value


def add_parser(sub) -> None:
    engines = sub.add_parser("engines", help="TensorRT engines for the shipped models (needs an NVIDIA GPU)")
    verbs = engines.add_subparsers(dest="engines_command", required=True)
    build = verbs.add_parser(
        "build", help="compile TensorRT engines from engines/*.onnx on this GPU",
        description="Compile a TensorRT engine for every ONNX model in engines/manifest.json on this machine's "
                    "NVIDIA GPU: FP16 where it holds parity with ONNX Runtime on the CPU (on inputs recorded from "
                    "the real pipeline), else FP16 with sensitive layers in FP32, else FP32; one optimisation "
                    "profile for batch 1..--max-batch; a timing cache; engines cached by GPU, TensorRT version "
                    "and ONNX sha256 (in $AVATAR_RT_ENGINE_CACHE, default ~/.cache/avatar_rt/tensorrt). Needs "
                    "the gpu extra (pip install -e '.[gpu]'). Without a GPU it says so and exits with status 2.")
    build.add_argument("--max-batch", type=_max_batch, default=16,
                       help="largest batch (sessions per call) the engines accept (default: 16)")
    build.add_argument("--model", action="append", metavar="NAME",
                       help="build only this model (repeatable; default: every ONNX model in the manifest)")
    build.add_argument("--engines-dir", type=Path, default=None, help="models and manifest (default: engines/)")
    build.add_argument("--force", action="store_true", help="rebuild even when a cached engine fits")
    build.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")


def run(args: argparse.Namespace) -> int:
    from avatar_rt.engines.backend import BackendUnavailable  # noqa: PLC0415
    from avatar_rt.engines.manifest import EngineError  # noqa: PLC0415

    try:
        return _build(args)
    except BackendUnavailable as exc:
        print(f"avatar-rt engines build: {exc}", file=sys.stderr)
        return 2
    except EngineError as exc:
        print(f"avatar-rt engines build: {exc}", file=sys.stderr)
        return 1


def _build(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # noqa: PLC0415

    from avatar_rt.engines.cache import read_note  # noqa: PLC0415
    from avatar_rt.engines.gpu import no_gpu_reason  # noqa: PLC0415
    from avatar_rt.engines.manifest import EngineError, engine_path, load_manifest  # noqa: PLC0415
    from avatar_rt.engines.tensorrt_backend import engine_key, import_cudart, import_tensorrt  # noqa: PLC0415

    reason = no_gpu_reason()
    if reason:
        print(f"avatar-rt engines build: no NVIDIA GPU here ({reason}). TensorRT engines are built on the GPU that "
              "runs them; here the models run on ONNX Runtime (--backend cpu).", file=sys.stderr)
        return 2
    trt = import_tensorrt()
    import_cudart()
    entries = load_manifest(args.engines_dir)["engines"]
    names = sorted(n for n, e in entries.items() if str(e.get("file", "")).endswith(".onnx"))
    unknown = sorted(set(args.model or []) - set(names))
    if unknown:
        raise EngineError(f"no ONNX model named {', '.join(unknown)} in the manifest (known: {', '.join(names)})")
    names = [n for n in names if not args.model or n in args.model]
    todo = []
    for name in names:
        path = engine_path(name, args.engines_dir)  # sha256 checked against the manifest
        key = engine_key(path)
        note = read_note(key)
        if note and note.get("max_batch", 0) >= args.max_batch and not args.force:
            print(f"{name}: cached ({note['precision']}, batch ≤ {note['max_batch']}) {key.plan}")
        else:
            todo.append((name, path, key))
    if not todo:
        return 0
    print(f"building {len(todo)} engine(s) on {key.gpu.name} (sm {key.gpu.compute_capability}), TensorRT "
          f"{trt.__version__}, batch 1..{args.max_batch}; recording parity inputs on the CPU …", flush=True)
    from avatar_rt.engines.build import build_model  # noqa: PLC0415
    from avatar_rt.engines.record import record_feeds  # noqa: PLC0415

    feeds = record_feeds(args.engines_dir)
    failed = 0
    for name, path, key in tqdm(todo, desc="engines", unit="model", disable=args.no_progress):
        try:
            built = build_model(name, path, key, feeds.get(name, []), max_batch=args.max_batch)
        except EngineError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            continue
        rejected = f" (rejected {'; '.join(built.tried)})" if built.tried else ""
        print(f"{name}: {built.precision} in {built.seconds:.1f} s{rejected} -> {key.plan}")
        for line in built.parity:
            print(f"  parity vs ONNX Runtime CPU: {line.line()}")
    return 1 if failed else 0
