"""Recorded inputs for parity checks: the feeds the real pipeline gives each shipped model, captured on the CPU.

`RecordingBackend` wraps a backend so that every runner it opens keeps a copy of its first calls' inputs. The
lip-sync stages record while the real streaming motion model (`LipSyncModel` with stage B) hears speech-like
audio (voiced syllables with pauses, synthesised here: nothing to download, no voice to reserve); the warp
records while it renders the bundled portrait in a few rig poses. A TensorRT engine is then judged on the
inputs it will really see, not on random tensors (the warp's vertex ids would be out of range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from avatar_rt.engines.backend import Backend, Runner, TensorSpec
from avatar_rt.engines.manifest import engine_path, load_manifest
from avatar_rt.engines.ort_backend import CPU
from avatar_rt.engines.profiles import batch_axes

Feeds = dict[str, np.ndarray]


class RecordingRunner:
    def __init__(self, runner: Runner, keep: int):
        self.runner, self.keep, self.calls = runner, keep, []
        self.backend, self.inputs, self.outputs = runner.backend, runner.inputs, runner.outputs
        self.metadata = runner.metadata

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        if len(self.calls) < self.keep:
            self.calls.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.runner.run(feeds, outputs)


class RecordingBackend:
    """`Backend` that records the first `keep` calls of every model it opens, by file path."""

    def __init__(self, inner: Backend = CPU, keep: int = 8):
        self.inner, self.keep = inner, keep
        self.name = f"recording({inner.name})"
        self.runners: dict[Path, RecordingRunner] = {}

    def available(self) -> str | None:
        return self.inner.available()

    def open(self, path: Path, what: str, *, threads: int = 1) -> RecordingRunner:
        runner = RecordingRunner(self.inner.open(path, what, threads=threads), self.keep)
        self.runners[Path(path).resolve()] = runner
        return runner


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """int16 voiced syllables (~4 a second, gliding pitch, two formant-ish resonances) with short pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 120 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) * np.exp(-((k * 120 - 700) / 500) ** 2 - 0.1 * k) for k in range(1, 25))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5 * (np.sin(2 * np.pi * 0.45 * t) > -0.6)
    audio = voice * envelope + 0.01 * rng.standard_normal(len(t))
    return (audio / np.abs(audio).max() * 12000).astype(np.int16)


def _record_lipsync(backend: RecordingBackend, engines_dir: Path | None, names: set[str], frames: int) -> None:
    from avatar_rt.motion.behaviour import STUDENT, TEACHER, BehaviourModel  # noqa: PLC0415
    from avatar_rt.motion.lipsync import ENGINE_NAME, LipSyncModel  # noqa: PLC0415

    if ENGINE_NAME not in names:
        return
    audio = speech_like(frames / 25 + 0.5)
    for behaviour_name in [n for n in (STUDENT, TEACHER) if n in names] or [None]:
        behaviour = None
        if behaviour_name:
            behaviour = BehaviourModel(backend.open(engine_path(behaviour_name, engines_dir), "behaviour model"))
        stage_a = backend.open(engine_path(ENGINE_NAME, engines_dir), "lip sync model")
        model = LipSyncModel(25.0, session=stage_a, behaviour=behaviour, engines_dir=engines_dir)
        for i in range(frames):
            model.step(audio[i * 640:(i + 1) * 640], True)


def _record_warp(backend: RecordingBackend, size: int) -> None:
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait  # noqa: PLC0415
    from avatar_rt.motion.params import MotionParams  # noqa: PLC0415
    from avatar_rt.render.renderer import PortraitRenderer  # noqa: PLC0415
    from avatar_rt.render.warp_onnx import OnnxWarpBackend  # noqa: PLC0415
    from avatar_rt.rig.landmark_rig import LandmarkRig  # noqa: PLC0415

    portrait = load_portrait(DEFAULT_PORTRAIT, size=size)
    renderer = PortraitRenderer(portrait)
    warp = OnnxWarpBackend(renderer.warp, renderer.source, renderer.alpha, renderer.background, backend=backend)
    rig = LandmarkRig(portrait)
    for params in (MotionParams(), MotionParams(jaw_open=0.8), MotionParams(head_yaw=0.3, mouth_corner_lift=0.8)):
        pose = rig.pose(params)
        warp.composite(pose.warp_points, pose.head_affine)


def record_feeds(engines_dir: Path | None = None, *, frames: int = 60, keep: int = 8,
                 size: int = 512) -> dict[str, list[Feeds]]:
    """{model name: recorded feeds} for every ONNX model in the manifest that the runtime runs."""
    from avatar_rt.render.warp_onnx import ENGINE_NAME as WARP  # noqa: PLC0415

    entries = load_manifest(engines_dir)["engines"]
    names = {n for n, e in entries.items() if str(e.get("file", "")).endswith(".onnx")}
    backend = RecordingBackend(CPU, keep)
    _record_lipsync(backend, engines_dir, names, frames)
    if WARP in names:
        _record_warp(backend, size)
    recorded = {}
    for name in sorted(names):
        runner = backend.runners.get(engine_path(name, engines_dir).resolve())
        if runner is not None and runner.calls:
            # The last calls: past the warm-up, where the stream carries speech and state.
            recorded[name] = runner.calls[-keep:]
    return recorded


def tile_batch(feeds: Feeds, inputs: Sequence[TensorSpec], batch: int) -> Feeds | None:
    """`feeds` repeated to `batch` rows along every batch axis; None for batch > 1 when the graph has no batch
    dimension (a literal 1: it serves one session per call)."""
    if batch != 1 and not any(batch_axes(spec) for spec in inputs):
        return None
    out = {}
    for spec in inputs:
        value = feeds[spec.name]
        for axis in batch_axes(spec):
            reps = -(-batch // value.shape[axis])
            value = np.concatenate([value] * reps, axis=axis).take(range(batch), axis=axis)
        out[spec.name] = value
    return out
