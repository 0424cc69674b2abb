"""Export every network to ONNX with one command, each checked against its reference, and the manifest.

    python -m export.all [--out engines/] [--checkpoint build/lipsync/stage_a.pt] [--text] [--check-only]

Per network (all ONNX opset 17, named inputs and outputs; a symbolic `batch` = sessions
where the graph runs per frame for many streams):

* lip-sync stage A — from its training checkpoint (`train_all` writes WORK/stage_a.pt)
  with the streaming exporter of export.lipsync.stage_a; the graph it replaces must give
  the same numbers at batch 1 (export.lipsync.reexport); without a checkpoint the graph in
  OUT stays as it is;
* lip-sync stage B, teacher and 2-step student — from their own graphs' float32 weights
  (stage B keeps no other checkpoint), re-pointed at the re-exported stage A;
* the portrait warp (export.warp_graph: hand-built, no torch model behind it) — its
  reference is the CPU warp it twins (avatar_rt.render.warp), on the bundled portrait;
* with `--text`, the free-text edit encoder (export.text_model: all-MiniLM-L6-v2, fp32
  against PyTorch, then int8) into its cache directory (`--text-out`).

Every export prints its parity (max and mean |Δ| against the reference) and writes it to
the model's manifest entry (name, version, sha256, opset, inputs/outputs with shapes and
dtypes, parity). Then every file in OUT is checked against its manifest hash and every
graph against the TensorRT readiness check (export.trt_readiness). `--check-only`
skips the exports and runs the checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from avatar_rt.engines import sha256
from export import manifest, trt_readiness

DEFAULT_CHECKPOINT = Path("build/lipsync/stage_a.pt")
WARP_POSES = 6


def warp_parity(path: Path, log=print) -> dict:
    """The ONNX warp against the CPU warp on the bundled portrait, over a few poses (grey levels 0–255: the
    composite is uint8; bounds as tests/test_warp_onnx.py: a pixel may differ where the open lips fold the field,
    the mean must stay far below one level)."""
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait  # noqa: PLC0415
    from avatar_rt.motion.params import MotionParams  # noqa: PLC0415
    from avatar_rt.render.renderer import PortraitRenderer  # noqa: PLC0415
    from avatar_rt.render.warp_onnx import OnnxWarpBackend  # noqa: PLC0415
    from avatar_rt.rig.landmark_rig import LandmarkRig  # noqa: PLC0415
    from export import parity  # noqa: PLC0415

    portrait = load_portrait(DEFAULT_PORTRAIT)
    renderer = PortraitRenderer(portrait)
    rig = LandmarkRig(portrait)
    backend = OnnxWarpBackend(renderer.warp, renderer.source, renderer.alpha, renderer.background, model_path=path)
    poses = [MotionParams(), MotionParams(jaw_open=1.0), MotionParams(head_yaw=0.45), MotionParams(head_roll=-0.35),
             MotionParams(mouth_corner_lift=1.0, lip_spread=0.6),
             MotionParams(jaw_open=0.7, lip_round=0.4, head_yaw=-0.35, head_pitch=-0.25, head_roll=0.3)][:WARP_POSES]
    got, ref = [], []
    for params in poses:
        pose = rig.pose(params)
        got.append(backend.composite(pose.warp_points, pose.head_affine))
        ref.append(renderer.backend.composite(pose.warp_points, pose.head_affine))
    return parity.measure("portrait_warp", got, ref, reference=f"the CPU warp ({len(poses)} poses, bundled portrait)",
                          bound=32.0, mean_bound=0.01, log=log)


def check_manifest(out: Path, log=print) -> list[str]:
    """Every manifest entry's file exists and has its sha256."""
    problems = []
    entries = json.loads((out / manifest.MANIFEST.name).read_text())["engines"]
    for name, entry in sorted(entries.items()):
        path = out / entry["file"]
        if not path.is_file():
            problems.append(f"{name}: {path} is missing")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{name}: {path} does not match its manifest sha256")
    log(f"manifest: {len(entries)} entries, " + ("every sha256 matches" if not problems else "; ".join(problems)))
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.all", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=manifest.ENGINES_DIR, help="engines directory (models + manifest)")
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                    help="stage A's training checkpoint (train_all's WORK/stage_a.pt)")
    ap.add_argument("--no-warp", action="store_true", help="leave the warp graph as it is")
    ap.add_argument("--text", action="store_true", help="also build the free-text encoder (a minute or two)")
    ap.add_argument("--text-out", type=Path, default=None, help="its cache directory (default: the runtime's)")
    ap.add_argument("--check-only", action="store_true", help="no exports: the manifest and readiness checks")
    args = ap.parse_args(argv)
    out = args.out
    t0 = time.monotonic()
    if not args.check_only:
        from export.lipsync import reexport  # noqa: PLC0415  (torch)

        stage_a_path = None
        if args.checkpoint.is_file():
            print(f"stage A from {args.checkpoint}")
            stage_a_path = reexport.export_stage_a(args.checkpoint, out)
        else:
            print(f"stage A: no checkpoint at {args.checkpoint}: {out / 'lipsync_stage_a.onnx'} left as it is "
                  "(python -m export.lipsync.train_all writes one)")
        print("stage B teacher and student from their graphs' weights")
        reexport.export_stage_b(out, stage_a_path)
        if not args.no_warp:
            from export import warp_graph  # noqa: PLC0415

            path = out / f"{warp_graph.NAME}.onnx"
            warp_graph.export(path, write_manifest=False)
            warp_graph.export(path, parity=warp_parity(path))
            print(f"warp: {path}")
        if args.text:
            from export import text_model  # noqa: PLC0415

            text_model.build(args.text_out)
    problems = check_manifest(out)
    reports = trt_readiness.check_dir(out)
    for r in reports:
        print(f"TensorRT readiness: {'ready' if r.ready else 'NOT READY'}: {Path(r.path).name}"
              + "".join(f"\n  - {p}" for p in r.problems))
    ok = not problems and all(r.ready for r in reports)
    print(f"export.all: {'done' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s → {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
