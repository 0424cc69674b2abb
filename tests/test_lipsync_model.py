"""Stage A end to end: a tiny training run exports an ONNX engine, and the runtime (avatar_rt/motion/lipsync.py)
streams it with exact alignment, equal to batch inference, robust to bad input. (Its cost per frame is a
number for benchmarks/lipsync.py, not a timed unit test: the machine is shared.)

The training run is the real command (`python -m export.lipsync.stage_a --tiny`) on a dozen utterances from
the real dataset generator (export.lipsync.data). The model it makes is barely trained, so these tests check
plumbing, alignment and robustness, not lip-sync quality (benchmarks/lipsync does that on the real model).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from avatar_rt import engines
from avatar_rt.audio.features import HOP, log_mel
from avatar_rt.audio.phone_features import phone_features
from avatar_rt.engines import Runner
from avatar_rt.motion.lipsync import (ENGINE_NAME, LipSyncModel, StageAStream, frame_end_sample, hop_for_frame,
                                      load_session, lookahead_for)
from avatar_rt.motion.params import MotionParams
from conftest import REPO

ARTICULATION = ("jaw_open", "lip_spread", "lip_round", "upper_lip_raise", "lower_lip_drop", "lip_press",
                "teeth_show")


def build_tiny_dataset(root: Path) -> Path:
    """A dozen utterances from the real dataset generator (espeak-ng with exact phoneme timings, coarticulated
    targets), in the npz format of docs/lipsync.md: 10 train, 1 val, 1 held-out."""
    data = pytest.importorskip("export.lipsync.data")
    if not data.synth.espeak_available():
        pytest.skip("libespeak-ng is not installed (the README test command installs it)")
    data.build(root, 12, seed=0, jobs=1, festival_frac=0.0, progress=False)
    return root


def train_tiny(data: Path, out: Path, checkpoint: Path) -> subprocess.CompletedProcess:
    """The real training command, `--tiny`: a few seconds on a handful of utterances."""
    return subprocess.run([sys.executable, "-m", "export.lipsync.stage_a", "--data", str(data), "--out", str(out),
                           "--tiny", "--phones", "--checkpoint", str(checkpoint)],
                          cwd=REPO, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """engines dir with lipsync_stage_a.onnx and manifest.json from a tiny training run of the real command."""
    pytest.importorskip("torch", reason="training needs torch (the `train` extra)")
    root = tmp_path_factory.mktemp("lipsync")
    data = build_tiny_dataset(root / "data")
    out = root / "engines"
    t0 = time.monotonic()
    proc = train_tiny(data, out, root / "stage_a.pt")
    print(f"tiny training + export: {time.monotonic() - t0:.1f} s\n{proc.stdout[-1500:]}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def utterance(trained) -> np.ndarray:
    """A validation utterance with extra silence, ~3.5 s."""
    path = sorted((trained.parent / "data" / "val").glob("*.npz"))[0]
    with np.load(path) as z:
        return np.concatenate([z["audio"], np.zeros(4800, np.int16)])


def batch_outputs(session: Runner, audio: np.ndarray, engines_dir: Path) -> dict[str, np.ndarray]:
    """Whole-utterance inference: offline features, one ONNX call from the zero state; row h is hop h."""
    stream = StageAStream(session, engines_dir)
    mel = log_mel(audio, stream.features.normalizer.stats)
    feed = {"mel": mel[None]}
    if stream.phones is not None:
        feed["phones"] = phone_features(stream.phones.front, audio)[None]
    for i in session.inputs:
        if i.name.startswith("state_"):
            feed[i.name] = np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
    out = session.run(feed, ["articulation", "viseme_probs", "phoneme_probs"])
    art, vis, phon = out["articulation"], out["viseme_probs"], out["phoneme_probs"]
    r = stream.right_context
    return {"articulation": art[0, r:], "viseme_probs": vis[0, r:], "phoneme_probs": phon[0, r:]}


def test_tiny_training_exports_a_checked_engine(trained):
    path = engines.engine_path(ENGINE_NAME, trained)  # exists, sha256 matches the manifest
    entry = engines.engine_entry(ENGINE_NAME, trained)
    assert entry["opset"] == 17
    meta = entry["metadata"]
    assert int(meta["right_context_hops"]) <= 8
    # "small": the runtime budget is 1 ms a frame on one core; the shipped 1.22 M parameters take 0.54 ms
    # (benchmarks/lipsync.py measures it)
    assert int(meta["parameters"]) <= 1_500_000
    assert meta["articulation"].split(",") == list(ARTICULATION)
    assert len(json.loads(meta["feature_stats"])["mean"]) == 80
    names_in = [i["name"] for i in entry["inputs"]]
    names_out = [o["name"] for o in entry["outputs"]]
    # the recipe's default: log-mels and the phone posteriors (avatar_rt.audio.phone_features), then the state
    assert names_in[:2] == ["mel", "phones"] and all(n.startswith("state_") for n in names_in[2:])
    # a symbolic batch (streams in one call, avatar_rt.motion.batching); the GRU state keeps ONNX's layout
    assert entry["inputs"][1]["shape"] == ["batch", "frames", 42]
    assert entry["inputs"][2]["shape"] == ["batch", 80 + 42, 2]  # the first conv's state holds both inputs
    assert entry["inputs"][-1]["shape"][:2] == [1, "batch"]
    # the export's parity against torch (whole sequence vs the graph in uneven chunks), in the manifest
    print(f"parity: {entry['parity']}")
    assert entry["parity"]["max_abs"] <= 1e-4 and entry["parity"]["mean_abs"] <= 1e-5
    assert json.loads(meta["phone_features"])["delay_hops"] == 5
    engines.engine_path("phone_am", trained)  # its acoustic model is shipped beside it, in the manifest
    assert names_out[:3] == ["articulation", "viseme_probs", "phoneme_probs"]
    assert sorted(names_out[3:]) == sorted("next_" + n for n in names_in[2:])
    session = load_session(path)
    assert session.metadata["right_context_hops"] == meta["right_context_hops"]


def test_streaming_equals_batch_inference(trained, utterance):
    session = load_session(engines.engine_path(ENGINE_NAME, trained))
    ref = batch_outputs(session, utterance, trained)
    stream = StageAStream(session, trained)
    rng = np.random.default_rng(0)
    got = {k: np.zeros_like(v) for k, v in ref.items()}
    i = 0
    while i < len(utterance):
        n = int(rng.choice([0, 1, 100, 160, 533, 640, 1500]))
        before = stream.hops_done
        stream.push(utterance[i:i + n])
        i += n
        for h in range(before, stream.hops_done):
            got["articulation"][h] = stream.articulation[h % 512]
            got["viseme_probs"][h] = stream.viseme_probs[h % 512]
            got["phoneme_probs"][h] = stream.phoneme_probs[h % 512]
    assert stream.hops_done == len(ref["articulation"]) == len(utterance) // HOP - stream.right_context
    for key in ref:
        err = float(np.abs(got[key] - ref[key]).max())
        print(f"{key}: max |stream − batch| = {err:.1e}")
        assert err <= 1e-5


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_frames_come_out_aligned_as_the_pipeline_expects(trained, utterance, fps):
    """Drive the model exactly as FramePipeline and offline.render_to_mp4 do (slice m = frame_bounds(m), frame
    m − L comes out): frame n must be the batch output for the hop holding its centre time, every time."""
    model = LipSyncModel(fps, engines_dir=trained, vad_gate=False, closure_boost=False)  # stage A's own outputs
    R, L = model.right_context, model.lookahead_frames
    assert L == lookahead_for(fps, R) == {25.0: 2, 30.0: 3}[fps]
    ref = batch_outputs(model.stream.session, utterance, trained)
    n_frames = int(round(len(utterance) / 16000 * fps))
    total_steps = n_frames + L
    padded = np.zeros(frame_end_sample(total_steps - 1, fps), np.int16)
    padded[:len(utterance)] = utterance[:len(padded)]
    ref = batch_outputs(model.stream.session, padded, trained)
    shown = []
    for m in range(total_steps):
        start, stop = int(m * 16000 // fps), frame_end_sample(m, fps)
        params = model.step(padded[start:stop], True)
        if m < L:
            assert params == MotionParams()
            continue
        n = m - L
        h = hop_for_frame(n, fps)
        assert (h + R + 1) * HOP <= stop  # the hop was computable from the audio delivered so far
        assert model.last_hop == h
        # lip_press shown is the larger of the press head and the PP posterior (both estimate the closure)
        expected = ref["articulation"][h].copy()
        expected[5] = max(expected[5], ref["viseme_probs"][h][model.visemes.index("PP")])
        np.testing.assert_allclose(params.to_vector()[6:13], expected, atol=1e-5)
        np.testing.assert_allclose(model.viseme_posteriors, ref["viseme_probs"][h], atol=1e-5)
        shown.append(n)
    assert shown == list(range(n_frames))
    assert model.late_frames == 0


def test_silence_closes_the_mouth_and_speech_opens_the_gate(trained, utterance):
    model = LipSyncModel(25.0, engines_dir=trained)
    for _ in range(20):
        p = model.step(np.zeros(640, np.int16), False)
    assert p.jaw_open <= 0.01 and p.lip_round <= 0.01 and model.viseme_posteriors.argmax() == 0
    model.reset()
    jaws = [model.step(utterance[i:i + 640], True).jaw_open for i in range(0, len(utterance) - 639, 640)]
    assert max(jaws) > 0.0


BAD_INPUTS = {
    "digital silence": lambda rng: np.zeros(640 * 50, np.int16),
    "white noise": lambda rng: rng.normal(0, 8000, 640 * 50).clip(-32768, 32767).astype(np.int16),
    "clipping": lambda rng: np.where(np.sin(np.arange(640 * 50) * 0.05) > 0, 32767, -32768).astype(np.int16),
    "nan and inf": lambda rng: np.where(rng.random(640 * 50) < 0.3, np.nan,
                                        np.where(rng.random(640 * 50) < 0.01, np.inf, rng.normal(0, 3000, 640 * 50))),
    "float overs": lambda rng: rng.normal(0, 1e6, 640 * 50),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
@pytest.mark.parametrize("speech", [False, True])
def test_bad_input_gives_finite_params_in_range(trained, name, speech):
    model = LipSyncModel(25.0, engines_dir=trained)
    audio = BAD_INPUTS[name](np.random.default_rng(1))
    for i in range(0, len(audio), 640):
        p = model.step(audio[i:i + 640], speech).to_vector()
        assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
        assert np.all(np.isfinite(model.viseme_posteriors))
    if not speech:
        assert p[6] <= 0.01  # jaw_open: the VAD says silence, the mouth is closed


def test_odd_chunks_do_not_crash(trained, utterance):
    """One-sample and empty slices (a caller off the media clock) degrade to the newest hop, never crash."""
    model = LipSyncModel(25.0, engines_dir=trained)
    for i in range(3000):
        p = model.step(utterance[i:i + 1], True)
        assert np.all(np.isfinite(p.to_vector()))
    for _ in range(5):
        model.step(np.zeros(0, np.int16), True)
    assert model.late_frames > 0
    model.step(np.tile(utterance, 3)[3000:], True)  # then a huge one: more hops than the output ring holds
    assert model.stream.features.samples_seen == 3 * len(utterance)
    assert model.stream.hops_done == 3 * len(utterance) // HOP - model.right_context


def test_in_the_frame_pipeline_lips_and_voice_leave_together(trained, utterance):
    """The real FramePipeline with the lip sync model: output frame n carries frame n's own audio slice and the
    model's articulation for the hop at frame n's centre."""
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.pipeline import FramePipeline, frame_bounds

    model = LipSyncModel(25.0, engines_dir=trained, vad_gate=False, closure_boost=False)  # stage A alone
    pipeline = FramePipeline(load_portrait(DEFAULT_PORTRAIT), 25.0, motion_model=model)
    assert pipeline.lookahead_frames == 2 and pipeline.lookahead_ms == 80.0
    ref = batch_outputs(model.stream.session, utterance, trained)
    frames, step = [], 0
    while frame_bounds(step, 25.0)[1] <= len(utterance):
        start, end = frame_bounds(step, 25.0)
        out = pipeline.step(utterance[start:end], render=False)
        if out is not None:
            frames.append(out)
        step += 1
    assert [f.index for f in frames] == list(range(step - 2))
    pp = model.visemes.index("PP")
    for f in frames:
        start, end = frame_bounds(f.index, 25.0)
        np.testing.assert_array_equal(f.audio, utterance[start:end])
        h = hop_for_frame(f.index, 25.0)
        expected = ref["articulation"][h].copy()
        expected[5] = max(expected[5], ref["viseme_probs"][h][pp])  # the press shown: either head's closure
        np.testing.assert_allclose(f.params.to_vector()[6:13], expected, atol=1e-5)


def test_vocal_tract_warp_moves_formants_and_is_identity_at_one():
    """Training-only VTLP: a spectral peak at mel bin 40 moves to bin 40·factor; factor 1 leaves features alone."""
    from export.lipsync.stage_a import warp_mel

    raw = np.zeros((3, 80))
    raw[:, 40] = 10.0
    for factor in (0.9, 1.1):
        peak = warp_mel(raw, factor).argmax(axis=1)
        assert np.all(np.abs(peak - 40 * factor) <= 1)
    np.testing.assert_array_equal(warp_mel(raw, 1.0), raw)


def test_batches_built_one_ahead_come_in_order_and_a_producer_error_reaches_the_trainer():
    """Training builds the next batch in a thread while torch trains on this one: the trainer must see every
    batch once, in the producer's order, and an exception in the producer (a broken utterance) must stop the
    training loop with that error, not hang it or skip a batch."""
    pytest.importorskip("torch", reason="training needs torch (the `train` extra)")
    from export.lipsync.stage_a import one_ahead

    def items(fail_at=None):
        for i in range(6):
            if i == fail_at:
                raise ValueError(f"utterance {i} is broken")
            yield i

    assert list(one_ahead(items())) == list(range(6))
    got = []
    with pytest.raises(ValueError, match="utterance 3 is broken"):
        for i in one_ahead(items(fail_at=3)):
            got.append(i)
    assert got == [0, 1, 2]
    early = one_ahead(items())
    assert next(early) == 0
    early.close()  # the time budget ran out: the batch in flight is dropped, the thread ends


def test_training_is_reproducible_with_batches_built_ahead(trained, tmp_path):
    """The same command and seed train the same weights, although batches are built in a thread one step ahead
    and the forward pass runs in bfloat16 (the ONNX files differ only in the training time in their metadata)."""
    torch = pytest.importorskip("torch", reason="training needs torch (the `train` extra)")
    root = trained.parent
    proc = train_tiny(root / "data", tmp_path / "engines", tmp_path / "again.pt")
    assert proc.returncode == 0, proc.stderr[-4000:]
    first = torch.load(root / "stage_a.pt", weights_only=False)["model"]
    again = torch.load(tmp_path / "again.pt", weights_only=False)["model"]
    assert first.keys() == again.keys()
    for name in first:
        assert torch.equal(first[name], again[name]), name
