"""The backend interface (avatar_rt/engines/): choosing a backend and why, real models through the CPU runner,
TensorRT profiles, recorded parity inputs, the engine cache key, and the startup errors a user sees."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime as ort
import pytest

from avatar_rt import engines
from avatar_rt.engines import BackendUnavailable, EngineError, TensorSpec
from avatar_rt.engines.cache import EngineKey
from avatar_rt.engines.gpu import Gpu, no_gpu_reason
from avatar_rt.engines.parity import compare, parity
from avatar_rt.engines.profiles import profile_shapes
from avatar_rt.engines.record import record_feeds, tile_batch
from avatar_rt.engines.select import choose
from avatar_rt.engines.tensorrt_backend import TENSORRT

NO_GPU = no_gpu_reason()
HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(NO_GPU is None, reason="this machine has an NVIDIA GPU: auto may rightly pick it")
def test_auto_picks_the_cpu_and_says_why_each_gpu_backend_was_passed_over(caplog):
    with caplog.at_level(logging.INFO, logger="avatar_rt.engines"):
        backend = engines.use("auto")
    assert backend.name == "cpu"
    line = caplog.messages[-1]
    assert line.startswith("backend cpu (auto): ")
    for name in ("tensorrt:", "ort-tensorrt:", "cuda:"):
        assert name in line
    assert "no NVIDIA GPU" in line


@pytest.mark.skipif(HAS_CUDA_EP, reason="this onnxruntime has the CUDA provider")
def test_a_backend_that_cannot_run_here_is_an_error_naming_it():
    with pytest.raises(BackendUnavailable, match=r"backend cuda is not available: .*no CUDAExecutionProvider"):
        choose("cuda")
    with pytest.raises(BackendUnavailable, match="unknown backend 'metal'"):
        choose("metal")


@pytest.mark.skipif(NO_GPU is None, reason="this machine has an NVIDIA GPU")
def test_native_tensorrt_is_unavailable_without_a_gpu():
    assert TENSORRT.available().startswith("no NVIDIA GPU: ")
    with pytest.raises(BackendUnavailable, match="backend tensorrt"):
        TENSORRT.open(engines.engine_path("lipsync_stage_b"), "behaviour model")


def test_cpu_runner_takes_named_inputs_and_returns_named_outputs():
    path = engines.engine_path("lipsync_stage_b")
    runner = engines.open_model(path, "behaviour model", backend=engines.CPU)
    assert [i.name for i in runner.inputs] == ["x", "t", "context"]
    assert runner.inputs[0].shape[1] == 5 and runner.inputs[0].dtype == np.float32
    assert "behaviour" in runner.metadata  # the exporter's metadata, which the stage reads
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 5), np.float32), "t": np.full((3, 1), 0.5, np.float32),
             "context": rng.standard_normal((3, 249), np.float32)}
    out = runner.run(feeds)
    assert list(out) == ["velocity"] and out["velocity"].shape == (3, 5)
    raw = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["velocity"], feeds)[0]
    np.testing.assert_allclose(out["velocity"], raw, rtol=1e-5, atol=1e-6)


def test_a_corrupt_model_file_is_an_engine_error_naming_it(tmp_path):
    bad = tmp_path / "lipsync_stage_b.onnx"
    bad.write_bytes(b"not an onnx graph")
    with pytest.raises(EngineError, match=r"cannot load the behaviour model .*lipsync_stage_b\.onnx"):
        engines.open_model(bad, "behaviour model", backend=engines.CPU)


def _specs(name: str) -> list[TensorSpec]:
    entry = engines.engine_entry(name)
    return [TensorSpec(i["name"], tuple(i["shape"]), np.dtype(np.float32)) for i in entry["inputs"]]


def test_profiles_range_only_the_symbolic_dimensions_of_the_shipped_graphs():
    stage_b = profile_shapes(_specs("lipsync_stage_b"), max_batch=16)
    assert stage_b["x"] == ((1, 5), (16, 5), (16, 5))  # 'n' is the batch: 1..16, tuned for a full GPU
    stage_a = profile_shapes(_specs("lipsync_stage_a"), max_batch=16)
    assert stage_a["mel"] == ((1, 1, 80), (1, 4, 80), (1, 256, 80))  # literal batch 1 stays 1; frames ranged
    assert stage_a["state_gru"][0] == stage_a["state_gru"][2]  # static state: min = max
    warp = profile_shapes(_specs("portrait_warp"), max_batch=16)
    assert warp["source"][1][2:] == (512, 512) and warp["background"][1][2:] == (429, 512)
    assert warp["grid_x"][2][1] == warp["source"][2][3]  # a dimension shared by name agrees everywhere
    # after the export makes the batch symbolic, the same table covers it
    batched = profile_shapes([TensorSpec("mel", ("batch", "frames", 80), np.dtype(np.float32))], max_batch=4)
    assert batched["mel"] == ((1, 1, 80), (4, 4, 80), (4, 256, 80))


def test_a_dimension_without_a_range_is_an_error_naming_it():
    with pytest.raises(EngineError, match=r"stage_x input 'tokens': dimension 'sequence' has no profile range"):
        profile_shapes([TensorSpec("tokens", (1, "sequence"), np.dtype(np.int64))], max_batch=4, model="stage_x")


def test_parity_bounds():
    ref = [np.linspace(-2, 2, 100, dtype=np.float32)]
    assert compare("y", ref, ref).ok
    assert compare("y", [ref[0] + 0.019], ref).ok  # within 1 % of the scale (2)
    assert not compare("y", [ref[0] + 0.03], ref).ok
    img = [np.full((100, 100, 3), 100, np.uint8)]
    assert not compare("frame", [img[0] + 1], img).ok  # every pixel off by one grey level: mean 1 > 0.5
    off = img[0].copy()
    off[0, 0] = 140
    assert compare("frame", [off], img).ok  # one stray pixel (a fold edge): mean 0.004, p99 0


@pytest.fixture(scope="module")
def recorded():
    return record_feeds(frames=30, keep=4)


def test_recorded_inputs_cover_every_shipped_graph_and_tile_to_a_batch(recorded):
    onnx_models = {n for n, e in engines.load_manifest()["engines"].items() if e["file"].endswith(".onnx")}
    assert set(recorded) == onnx_models
    stage_b = engines.open_model(engines.engine_path("lipsync_stage_b"), "behaviour model", backend=engines.CPU)
    feeds = recorded["lipsync_stage_b"][0]
    wide = tile_batch(feeds, stage_b.inputs, 16)
    assert wide["x"].shape == (16, 5) and np.array_equal(wide["x"][-1], feeds["x"][-1])
    stage_a = engines.open_model(engines.engine_path("lipsync_stage_a"), "lip sync model", backend=engines.CPU)
    assert tile_batch(recorded["lipsync_stage_a"][0], stage_a.inputs, 4) is None  # batch is a literal 1 there
    assert all(p.ok and p.max_abs == 0 for p in parity(stage_a, stage_a, recorded["lipsync_stage_a"]))


def test_engine_cache_key_names_gpu_tensorrt_and_onnx_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATAR_RT_ENGINE_CACHE", str(tmp_path))
    key = EngineKey(Gpu("NVIDIA H200", "9.0"), "10.13.0.35", "ab" * 32)
    assert key.folder == tmp_path / "nvidia-h200-sm90-trt10.13.0.35"
    assert key.plan.name == "ab" * 32 + ".plan" and key.timing_cache.parent == key.folder


@pytest.mark.skipif(NO_GPU is not None, reason=f"no NVIDIA GPU: {NO_GPU}")
def test_tensorrt_engine_holds_parity_with_the_cpu(recorded, tmp_path, monkeypatch):
    """On a GPU machine with the gpu extra: build stage B, run it natively, compare with ONNX Runtime CPU."""
    pytest.importorskip("tensorrt", reason="the gpu extra is not installed")
    from avatar_rt.engines.build import build_model
    from avatar_rt.engines.tensorrt_backend import engine_key

    monkeypatch.setenv("AVATAR_RT_ENGINE_CACHE", str(tmp_path))
    path = engines.engine_path("lipsync_stage_b")
    built = build_model("lipsync_stage_b", path, engine_key(path), recorded["lipsync_stage_b"], max_batch=4)
    assert all(p.ok for p in built.parity)
    runner = TENSORRT.open(path, "behaviour model")
    cpu = engines.open_model(path, "behaviour model", backend=engines.CPU)
    assert all(p.ok for p in parity(runner, cpu, recorded["lipsync_stage_b"]))


@pytest.mark.skipif(not HAS_CUDA_EP, reason=f"no NVIDIA GPU: onnxruntime {ort.__version__} has no CUDA provider")
def test_cuda_provider_holds_parity_with_the_cpu(recorded):
    path = engines.engine_path("lipsync_stage_a")
    cuda = engines.open_model(path, "lip sync model", backend=choose("cuda")[0])
    cpu = engines.open_model(path, "lip sync model", backend=engines.CPU)
    assert all(p.ok for p in parity(cuda, cpu, recorded["lipsync_stage_a"]))


def test_manifest_import_paths_still_work():
    from avatar_rt.engines import ENGINES_DIR, MANIFEST_NAME, engine_entry, load_manifest, one_thread_session, sha256

    assert (ENGINES_DIR / MANIFEST_NAME).is_file() and callable(engine_entry) and callable(load_manifest)
    path = engines.engine_path("lipsync_stage_b")
    assert sha256(path) == json.loads((ENGINES_DIR / MANIFEST_NAME).read_text())["engines"]["lipsync_stage_b"][
        "sha256"]
    assert one_thread_session(path, "behaviour model").get_inputs()[0].name == "x"


def test_the_cpu_backend_keeps_opencvs_warp():
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.render.renderer import PortraitRenderer
    from avatar_rt.render.warp import CpuWarpBackend

    engines.use("cpu")
    assert isinstance(PortraitRenderer(load_portrait(DEFAULT_PORTRAIT, size=256)).backend, CpuWarpBackend)


def test_ort_tensorrt_provider_gets_the_same_profiles_as_its_options():
    from avatar_rt.engines.ort_backend import ORT_TENSORRT

    options = ORT_TENSORRT.providers(engines.engine_path("lipsync_stage_a"))[0][1]
    assert options["trt_fp16_enable"] is False  # no parity check on that path, so no FP16
    assert (options["trt_profile_min_shapes"], options["trt_profile_opt_shapes"],
            options["trt_profile_max_shapes"]) == ("mel:1x1x80", "mel:1x4x80", "mel:1x256x80")
