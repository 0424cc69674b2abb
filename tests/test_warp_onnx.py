"""The ONNX warp (engines/portrait_warp.onnx in ONNX Runtime) against the CPU warp it twins, and the
engine manifest's integrity checks."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from avatar_rt import engines
from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
from avatar_rt.motion.params import MotionParams
from avatar_rt.render.renderer import PortraitRenderer
from avatar_rt.render.warp_onnx import ENGINE_NAME, OnnxWarpBackend
from avatar_rt.rig.landmark_rig import LandmarkRig

# Measured on the bundled portrait: mean ≤ 0.0001 grey levels, 99.9th percentile 0, about 0.01 % of
# values differ at all, worst pixel ≤ 9 (where the open lips fold the field). The bounds leave room
# for float noise on other CPUs, not for a wrong map: one pixel of shift anywhere fails them.
MEAN_MAX = 0.01
P99_MAX = 0.0
OVER_2_MAX = 1e-4  # share of channel values more than 2 grey levels apart

POSES = {
    "jaw_open": MotionParams(jaw_open=1.0),
    "yaw": MotionParams(head_yaw=0.45),
    "roll": MotionParams(head_roll=-0.35),
    "pitch": MotionParams(head_pitch=0.35),
    "smile": MotionParams(mouth_corner_lift=1.0, cheek_raise=0.8, lip_spread=0.6, eye_squint=0.5),
    "combined": MotionParams(jaw_open=0.7, lip_round=0.4, head_yaw=-0.35, head_pitch=-0.25, head_roll=0.3,
                             head_tx=0.2, head_ty=-0.15, head_scale=0.1, brow_raise_l=0.8, brow_furrow=0.3),
}


@pytest.fixture(scope="module")
def avatar():
    portrait = load_portrait(DEFAULT_PORTRAIT)
    renderer = PortraitRenderer(portrait)
    onnx_backend = OnnxWarpBackend(renderer.warp, renderer.source, renderer.alpha, renderer.background)
    return renderer, LandmarkRig(portrait), onnx_backend


def differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.mark.parametrize("name", list(POSES))
def test_onnx_warp_matches_cpu(avatar, name):
    renderer, rig, onnx_backend = avatar
    pose = rig.pose(POSES[name])
    cpu = renderer.backend.composite(pose.warp_points, pose.head_affine)
    onnx = onnx_backend.composite(pose.warp_points, pose.head_affine)
    assert onnx.shape == (renderer.warp.rows, renderer.size, 3)
    d = differences(cpu, onnx)
    mean, p99 = float(d.mean()), float(np.percentile(d, 99))
    print(f"{name}: mean {mean:.2e}, p99 {p99:.0f}, max {d.max()}, >2: {np.mean(d > 2):.2e}")
    assert mean < MEAN_MAX
    assert p99 <= P99_MAX
    assert np.mean(d > 2) < OVER_2_MAX


def test_rest_pose_is_identical(avatar):
    renderer, rig, onnx_backend = avatar
    pose = rig.pose(MotionParams())
    cpu = renderer.backend.composite(pose.warp_points, pose.head_affine)
    assert np.array_equal(onnx_backend.composite(pose.warp_points, pose.head_affine), cpu)


def test_renderer_with_onnx_backend(avatar):
    renderer, rig, onnx_backend = avatar
    pose = rig.pose(POSES["combined"])
    cpu_frame = renderer.render(pose)
    cpu_backend = renderer.backend
    renderer.backend = onnx_backend
    try:
        onnx_frame = renderer.render(pose)
    finally:
        renderer.backend = cpu_backend
    assert onnx_frame.shape == cpu_frame.shape == (renderer.size, renderer.size, 3)
    d = differences(cpu_frame, onnx_frame)
    assert d.mean() < MEAN_MAX
    assert np.percentile(d, 99) <= P99_MAX


def test_bad_input_shapes_are_refused(avatar):
    _, rig, onnx_backend = avatar
    pose = rig.pose(MotionParams())
    with pytest.raises(ValueError, match="warp_points"):
        onnx_backend.composite(pose.warp_points[:468], pose.head_affine)
    with pytest.raises(ValueError, match="head_affine"):
        onnx_backend.composite(pose.warp_points, np.eye(3, dtype=np.float32))


def test_manifest_describes_the_shipped_graph(avatar):
    _, _, onnx_backend = avatar
    entry = engines.load_manifest()["engines"][ENGINE_NAME]
    assert entry["opset"] == 17
    assert engines.engine_path(ENGINE_NAME).stat().st_size == entry["bytes"] < 64 * 1024  # a graph, no weights
    session_inputs = {i.name: i for i in onnx_backend.session.inputs}
    assert [i["name"] for i in entry["inputs"]] == list(session_inputs)
    assert [o["name"] for o in entry["outputs"]] == [o.name for o in onnx_backend.session.outputs]
    for spec in entry["inputs"]:
        assert len(spec["shape"]) == len(session_inputs[spec["name"]].shape)  # static ranks


def test_manifest_hash_check_catches_a_corrupted_copy(tmp_path):
    copy = tmp_path / "engines"
    shutil.copytree(engines.ENGINES_DIR, copy)
    entry = engines.load_manifest(copy)["engines"][ENGINE_NAME]
    model = copy / entry["file"]
    assert engines.engine_path(ENGINE_NAME, copy) == model
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(engines.EngineError, match="sha256"):
        engines.engine_path(ENGINE_NAME, copy)
    model.unlink()
    with pytest.raises(engines.EngineError, match="missing"):
        engines.engine_path(ENGINE_NAME, copy)
    with pytest.raises(engines.EngineError, match="no engine named"):
        engines.engine_path("no_such_model", copy)
    (copy / engines.MANIFEST_NAME).write_text(json.dumps({"format": 1}))
    with pytest.raises(engines.EngineError, match="engines"):
        engines.load_manifest(copy)


def test_export_reproduces_the_shipped_file(tmp_path):
    """The checked-in graph is what `python -m export.warp_graph` builds today (needs the `onnx` package)."""
    pytest.importorskip("onnx", reason="the onnx package (export extra) is not installed")
    repo = str(engines.ENGINES_DIR.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from export import warp_graph

    out = warp_graph.export(tmp_path / "portrait_warp.onnx", write_manifest=False)
    expected = engines.load_manifest()["engines"][ENGINE_NAME]["sha256"]
    assert engines.sha256(out) == expected, "engines/portrait_warp.onnx is stale: run `python -m export.warp_graph`"


def test_engine_for_another_inverse_step_count_is_refused(avatar, monkeypatch):
    renderer, _, _ = avatar
    monkeypatch.setattr(renderer.warp, "inverse_steps", renderer.warp.inverse_steps + 1, raising=False)
    with pytest.raises(engines.EngineError, match="inverse-steps"):
        OnnxWarpBackend(renderer.warp, renderer.source, renderer.alpha, renderer.background)


def test_more_inverse_steps_match_cpu(avatar, monkeypatch, tmp_path):
    """An engine exported with --inverse-steps 2 twins a DenseWarp that takes two steps (needs `onnx`)."""
    pytest.importorskip("onnx", reason="the onnx package (export extra) is not installed")
    repo = str(engines.ENGINES_DIR.parent)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from export import warp_graph

    renderer, rig, _ = avatar
    path = warp_graph.export(tmp_path / "warp2.onnx", write_manifest=False, inverse_steps=2)
    monkeypatch.setattr(renderer.warp, "inverse_steps", 2, raising=False)
    backend = OnnxWarpBackend(renderer.warp, renderer.source, renderer.alpha, renderer.background, model_path=path)
    pose = rig.pose(POSES["combined"])
    d = differences(renderer.backend.composite(pose.warp_points, pose.head_affine),
                    backend.composite(pose.warp_points, pose.head_affine))
    assert d.mean() < MEAN_MAX
    assert np.percentile(d, 99) <= P99_MAX
