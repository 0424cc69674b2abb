"""Per-frame cost of the session pipeline on this machine, stage by stage.

Runs the real pipeline (VAD → motion → idle → rig → warp/mouth/eyelids → YUV
conversion → VP8 encode) over espeak-ng speech, one thread, and prints the
median and p99 of each stage in milliseconds, with the machine it ran on.

    python benchmarks/frame_pipeline.py [--seconds 20] [--size 512] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from machine import machine  # benchmarks/machine.py, beside this script


def speech(seconds: float) -> np.ndarray:
    text = ("The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
            "How much wood would a woodchuck chuck if a woodchuck could chuck wood? ") * 4
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            rate = w.getframerate()
    pcm = np.interp(np.arange(int(len(pcm) * 16000 / rate)) * rate / 16000, np.arange(len(pcm)), pcm)
    need = int(seconds * 16000)
    return np.resize(pcm.astype(np.int16), need)


def stats(values: list[float]) -> dict:
    arr = np.array(values) * 1000.0
    return {"median_ms": round(float(np.median(arr)), 3), "p99_ms": round(float(np.percentile(arr, 99)), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of speech to run (default 20)")
    parser.add_argument("--size", type=int, default=512, help="output size in pixels (default 512)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate (default 25)")
    parser.add_argument("--motion", choices=("auto", "lipsync", "loudness"), default="auto",
                        help="motion model, as `avatar-rt serve --motion` (default auto: the shipped lip sync)")
    parser.add_argument("--behaviour", choices=("auto", "model", "teacher", "idle"), default="auto",
                        help="head/brows/blinks, as `avatar-rt serve --behaviour` (default auto: stage B)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import av
    import cv2

    cv2.setNumThreads(1)
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.motion.factory import make_motion_model
    from avatar_rt.pipeline import FramePipeline, frame_bounds
    from avatar_rt.server.tracks import PipelineVideoTrack

    portrait = load_portrait(DEFAULT_PORTRAIT, size=args.size)
    motion = make_motion_model(args.motion, args.fps, args.behaviour)
    pipeline = FramePipeline(portrait, args.fps, motion_model=motion)
    print(f"motion: {type(motion).__name__}"
          + (f" + stage B ({motion.behaviour.steps} steps)" if getattr(motion, "behaviour", None) else ""))
    encoder = get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000))
    pcm = speech(args.seconds)
    n_frames = int(args.seconds * args.fps) - 1
    timings: dict[str, list[float]] = {"motion": [], "render": [], "to_yuv": [], "encode_vp8": [], "total": []}
    for n in range(n_frames):
        a, b = frame_bounds(n, args.fps)
        t0 = time.perf_counter()
        out = pipeline.step(pcm[a:b])
        t1 = time.perf_counter()
        if out is None:
            continue
        frame = PipelineVideoTrack.make_frame(out.image, out.index, args.fps)
        t2 = time.perf_counter()
        encoder.encode(frame)
        t3 = time.perf_counter()
        timings["motion"].append(out.timings.motion_done - out.timings.tick)
        timings["render"].append(out.timings.render_done - out.timings.motion_done)
        timings["to_yuv"].append(t2 - t1)
        timings["encode_vp8"].append(t3 - t2)
        timings["total"].append(t3 - t0)
    result = {
        "benchmark": "frame_pipeline",
        "machine": machine(),
        "size": args.size,
        "fps": args.fps,
        "frames": len(timings["total"]),
        "stages": {k: stats(v) for k, v in timings.items()},
        "av": av.__version__,
    }
    m = result["machine"]
    print(f"frame pipeline, {args.size}x{args.size} @ {args.fps:g} fps, {result['frames']} frames, one thread")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date']}")
    print(f"{'stage':<12}{'median ms':>11}{'p99 ms':>9}")
    for name, s in result["stages"].items():
        print(f"{name:<12}{s['median_ms']:>11.2f}{s['p99_ms']:>9.2f}")
    budget = 1000.0 / args.fps
    print(f"budget per frame at {args.fps:g} fps: {budget:.1f} ms; p99 total uses "
          f"{100 * result['stages']['total']['p99_ms'] / budget:.0f}% of it")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
