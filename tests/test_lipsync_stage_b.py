"""Stage B (behaviour flow model) and the one-command training.

* `python -m export.lipsync.train_all --tiny` runs the real pipeline (data → stage A → stage B teacher →
  progressive distillation → ONNX + manifest) in seconds; its models are barely trained, so they are used for
  plumbing only.
* The sampler is checked on a flow whose answer is known.
* What a user sees is checked on the shipped models (engines/): blinks at a human rate, the head livelier in
  speech than in silence, the style controls obeyed, the student close to its teacher, bad audio harmless.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avatar_rt import engines
from avatar_rt.motion.behaviour import OUTPUTS, STUDENT, TEACHER, BehaviourModel, load_session
from avatar_rt.motion.lipsync import LipSyncModel
from avatar_rt.motion.lipsync import load_session as load_stage_a
from avatar_rt.motion.params import MotionParams
from avatar_rt.motion.sampler import FlowSampler, time_grid
from conftest import espeak, resample

FPS = 25.0
SLICE = 640  # samples per 25 fps frame


def shipped(name: str) -> Path:
    try:
        return engines.engine_path(name)
    except engines.EngineError as exc:
        pytest.skip(f"{name} is not shipped in engines/ ({exc})")


def model_for(stage_a: Path, stage_b: Path | None, *, seed: int = 0, steps: int | None = None) -> LipSyncModel:
    behaviour = BehaviourModel(load_session(stage_b), seed=seed, steps=steps) if stage_b else None
    return LipSyncModel(FPS, session=load_stage_a(stage_a), behaviour=behaviour, engines_dir=stage_a.parent)


def drive(model: LipSyncModel, audio: np.ndarray, speech: bool | None = None) -> np.ndarray:
    """(frames, 29) motion vectors for 25 fps slices of `audio` (speech flag: energy, unless given)."""
    out = []
    for i in range(0, len(audio) - SLICE + 1, SLICE):
        chunk = audio[i:i + SLICE]
        flag = speech if speech is not None else float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))) > 300
        out.append(model.step(chunk, flag).to_vector())
    return np.array(out)


def blinks_per_min(blink: np.ndarray) -> float:
    closes = np.sum((blink[1:] >= 0.5) & (blink[:-1] < 0.5))
    return 60.0 * closes / (len(blink) / FPS)


# --------------------------------------------------------------------------- the sampler


def test_sampler_takes_as_many_steps_as_set_and_lands_on_a_known_flow():
    """The straight-line flow towards the context (v = (c − x)/(1 − t)) is integrated exactly by Euler, so any
    step count lands on c; the network is called exactly `steps` times."""
    calls = []

    def velocity(x, t, c):
        calls.append(float(t[0, 0]))
        return (c - x) / (1.0 - t)

    target = np.array([[0.5, -2.0, 3.0]], np.float32)
    sampler = FlowSampler(velocity, steps=2)
    for steps in (1, 2, 5, 32):
        calls.clear()
        sampler.steps = steps
        got = sampler.sample(target, np.random.default_rng(0).standard_normal((1, 3)))
        np.testing.assert_allclose(got, target, atol=1e-5)
        assert calls == pytest.approx(time_grid(steps)[:-1].tolist())
    with pytest.raises(ValueError, match="at least one step"):
        sampler.steps = 0


# --------------------------------------------------------------------------- training, export, plumbing


def test_train_all_tiny_exports_every_model_with_a_manifest(tiny_run):
    out = tiny_run / "engines"
    manifest = json.loads((out / "manifest.json").read_text())["engines"]
    for name in ("lipsync_stage_a", STUDENT, TEACHER):
        engines.engine_path(name, out)  # exists and its sha256 matches
    assert manifest[STUDENT]["metadata"]["steps"] == "2" and manifest[STUDENT]["metadata"]["role"] == "student"
    assert int(manifest[TEACHER]["metadata"]["steps"]) >= 16
    # stage B records which stage A produced its conditioning
    assert manifest[STUDENT]["metadata"]["stage_a_sha256"] == manifest["lipsync_stage_a"]["sha256"]
    log = json.loads((tiny_run / "work" / "train_all.json").read_text())
    assert set(log["seconds"]) == {"data", "stage_a", "stage_b", "total"}


def test_stage_b_streams_from_stage_a_and_is_reproducible(tiny_run):
    out = tiny_run / "engines"
    val = sorted((tiny_run / "work" / "data" / "val").glob("*.npz"))[0]
    audio = np.concatenate([np.load(val)["audio"], np.zeros(16000, np.int16)])
    a = drive(model_for(out / "lipsync_stage_a.onnx", out / f"{STUDENT}.onnx", seed=3), audio)
    b = drive(model_for(out / "lipsync_stage_a.onnx", out / f"{STUDENT}.onnx", seed=3), audio)
    c = drive(model_for(out / "lipsync_stage_a.onnx", out / f"{STUDENT}.onnx", seed=4), audio)
    np.testing.assert_array_equal(a, b)  # same seed, same stream: the same motion
    assert not np.array_equal(a, c)  # another seed: another sample
    for v in a:
        np.testing.assert_array_equal(MotionParams.from_vector(v).clipped().to_vector(), v)


def test_the_runtime_conditions_stage_b_exactly_as_training_did(tiny_run):
    """The rows the streaming runtime hands stage B (stage A's outputs and the energy, per behaviour frame)
    equal what training computed offline for the same audio — and the frame for video frame n is ready when
    frame n is shown (stage B adds no latency)."""
    from export.lipsync.stage_b import StageAOffline

    out = tiny_run / "engines"
    val = sorted((tiny_run / "work" / "data" / "val").glob("*.npz"))[0]
    audio = np.concatenate([np.load(val)["audio"], np.zeros(8000, np.int16)])
    model = model_for(out / "lipsync_stage_a.onnx", out / f"{STUDENT}.onnx")
    rows, add = [], model.behaviour.add_row  # where LipSyncModel hands over stage A's rows
    model.behaviour.add_row = lambda row: (rows.append(np.array(row)), add(row))
    ready = []
    for i in range(0, len(audio) - SLICE + 1, SLICE):
        model.step(audio[i:i + SLICE], True)
        if model.last_hop >= 0:
            ready.append(len(model.behaviour.frames) + model.behaviour._offset > (model.last_hop - 2) // 4)
    offline = StageAOffline(out / "lipsync_stage_a.onnx").cond_rows(audio)
    n = min(len(rows), len(offline))
    assert n >= len(audio) // SLICE - 4
    np.testing.assert_allclose(np.array(rows[:n]), offline[:n], atol=1e-4)
    assert all(ready)


def test_stage_a_with_phones_streams_in_uneven_chunks_like_one_call(tiny_run):
    """train_all's stage A has the phones input; the runtime streaming it in uneven chunks (phone front end and
    network state carried across calls) gives what one call on the whole utterance gives."""
    from avatar_rt.motion.lipsync import StageAStream
    from export.lipsync import stage_a

    out = tiny_run / "engines"
    session = load_stage_a(out / "lipsync_stage_a.onnx")
    assert [i.name for i in session.inputs][:2] == ["mel", "phones"]
    val = sorted((tiny_run / "work" / "data" / "val").glob("*.npz"))[0]
    audio = np.load(val)["audio"]
    stream = StageAStream(session, out)
    inputs = stage_a.utterance_inputs(audio, stream.features.normalizer.stats, stream.phones.front)
    whole = stage_a.run_onnx_chunked(session.session, inputs)  # the exporter's helper takes ORT's own session
    padded = np.concatenate([audio, np.zeros(stage_a.RIGHT_CONTEXT * 160, np.int16)])
    rng, i, got = np.random.default_rng(1), 0, []
    while i < len(padded):
        n = int(rng.choice([1, 37, 160, 641, 1999]))
        before = stream.hops_done
        stream.push(padded[i:i + n])
        got += [stream.articulation[h % 512].copy() for h in range(before, stream.hops_done)]
        i += n
    r = stream.right_context
    want = whole["articulation"][r:]
    assert len(got) == len(want) > 100
    np.testing.assert_allclose(np.array(got), want, atol=1e-5)


def test_tiny_stage_a_with_phones_survives_bad_audio(tiny_run):
    out = tiny_run / "engines"
    rng = np.random.default_rng(5)
    for name in ("digital silence", "clipping", "nan and inf"):
        x = drive(model_for(out / "lipsync_stage_a.onnx", out / f"{STUDENT}.onnx"), BAD[name](rng)[:16000 * 2])
        assert np.all(np.isfinite(x)), name
    model = model_for(out / "lipsync_stage_a.onnx", None)
    for _ in range(700):
        assert np.all(np.isfinite(model.step(rng.normal(0, 3000, 1).astype(np.int16), True).to_vector()))


def test_the_teacher_is_the_student_network_with_more_steps(tiny_run):
    out = tiny_run / "engines"
    teacher = BehaviourModel(load_session(out / f"{TEACHER}.onnx"))
    student = BehaviourModel(load_session(out / f"{STUDENT}.onnx"))
    assert student.steps == 2 and teacher.steps > student.steps
    student.steps = 7  # the step count is the sampler's setting, not the network's
    assert student.sampler.steps == 7


# --------------------------------------------------------------------------- the shipped models


@pytest.fixture(scope="module")
def speech_audio(tmp_path_factory) -> np.ndarray:
    """~25 s of espeak-ng speech in phrases with pauses, then 30 s of silence."""
    path = tmp_path_factory.mktemp("speech") / "talk.wav"
    text = ("Hello, and welcome back. Today we will look at the weather in the mountains. "
            "It has been a very cold week, with snow on the high roads. "
            "Tomorrow, the sun comes out again, and the temperature will climb. "
            "Please drive carefully, and thank you for listening. ") * 2
    audio, rate = espeak(text, path)
    return np.concatenate([resample(audio, rate, 16000), np.zeros(16000 * 30, np.int16)])


def test_shipped_behaviour_blinks_like_a_person_and_moves_more_in_speech(speech_audio):
    a, b = shipped("lipsync_stage_a"), shipped(STUDENT)
    x = drive(model_for(a, b, seed=0), speech_audio)
    names = list(MotionParams.__dataclass_fields__)
    yaw, blink = x[:, names.index("head_yaw")], x[:, names.index("blink_l")]
    talk = len(x) - 30 * int(FPS)
    rate_talk, rate_quiet = blinks_per_min(blink[:talk]), blinks_per_min(blink[talk:])
    print(f"student: blinks/min talking {rate_talk:.1f}, silent {rate_quiet:.1f}; yaw speed talking "
          f"{np.abs(np.diff(yaw[:talk])).mean():.4f}, silent {np.abs(np.diff(yaw[talk:])).mean():.4f} rad/frame")
    assert 4 <= rate_talk <= 45 and 4 <= rate_quiet <= 45  # people blink ~10–30 times a minute
    assert blink.max() > 0.9  # a blink closes the eye
    assert np.abs(np.diff(yaw[:talk])).mean() > np.abs(np.diff(yaw[talk:])).mean()  # livelier when talking
    assert np.all(np.abs(x[:, names.index("head_yaw")]) <= 0.3)


def test_shipped_behaviour_obeys_the_style(speech_audio):
    a, b = shipped("lipsync_stage_a"), shipped(STUDENT)
    names = list(MotionParams.__dataclass_fields__)
    clip = speech_audio[:16000 * 20]
    calm = model_for(a, b, seed=1)
    calm.behaviour.set_style(motion=0.0, blink_per_min=0.0)
    lively = model_for(a, b, seed=1)
    lively.behaviour.set_style(motion=2.0, blink_per_min=35.0)
    xc, xl = drive(calm, clip), drive(lively, clip)
    spread = lambda x: x[:, names.index("head_yaw")].std() + x[:, names.index("head_pitch")].std()  # noqa: E731
    print(f"head spread calm {spread(xc):.4f} vs lively {spread(xl):.4f}; blinks/min calm "
          f"{blinks_per_min(xc[:, names.index('blink_l')]):.1f} vs lively {blinks_per_min(xl[:, names.index('blink_l')]):.1f}")
    assert spread(xl) > 3 * spread(xc)
    assert xc[:, names.index("blink_l")].max() == 0.0  # blink rate 0: no blink at all
    assert blinks_per_min(xl[:, names.index("blink_l")]) >= 10


def test_shipped_student_blinks_and_moves_like_its_teacher(speech_audio):
    a = shipped("lipsync_stage_a")
    names = list(MotionParams.__dataclass_fields__)
    rates, spreads = {}, {}
    for name in (TEACHER, STUDENT):
        xs = [drive(model_for(a, shipped(name), seed=s), speech_audio) for s in range(3)]
        rates[name] = np.mean([blinks_per_min(x[:, names.index("blink_l")]) for x in xs])
        spreads[name] = np.mean([x[:, names.index("head_yaw")].std() for x in xs])
    print(f"blinks/min teacher {rates[TEACHER]:.1f} student {rates[STUDENT]:.1f}; yaw std teacher "
          f"{spreads[TEACHER]:.4f} student {spreads[STUDENT]:.4f}")
    assert rates[STUDENT] == pytest.approx(rates[TEACHER], rel=0.5)
    assert spreads[STUDENT] == pytest.approx(spreads[TEACHER], rel=0.5)


def _music(n: int, rng) -> np.ndarray:
    t = np.arange(n) / 16000
    notes = 220 * 2 ** (rng.integers(0, 12, n // 4000 + 1) / 12)
    f = np.repeat(notes, 4000)[:n]
    y = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) + 0.3 * np.sin(2 * np.pi * 55 * t)
    return (y * 6000).astype(np.int16)


BAD = {
    "digital silence": lambda rng: np.zeros(16000 * 6, np.int16),
    "white noise": lambda rng: rng.normal(0, 8000, 16000 * 6).clip(-32768, 32767).astype(np.int16),
    "music": lambda rng: _music(16000 * 6, rng),
    "clipping": lambda rng: np.where(np.sin(np.arange(16000 * 6) * 0.05) > 0, 32767, -32768).astype(np.int16),
    "nan and inf": lambda rng: np.where(rng.random(16000 * 6) < 0.3, np.nan,
                                        np.where(rng.random(16000 * 6) < 0.01, np.inf, rng.normal(0, 3000, 16000 * 6))),
}


@pytest.mark.parametrize("name", list(BAD))
def test_shipped_models_stay_plausible_on_bad_audio(name):
    """Nothing crashes, every value stays in its documented range, and the motion stays smooth: no jump
    between frames larger than the largest a real speech stream makes (measured: jaw ≤ 0.6, yaw ≤ 0.05)."""
    model = model_for(shipped("lipsync_stage_a"), shipped(STUDENT))
    audio = BAD[name](np.random.default_rng(5))
    x = drive(model, audio, speech=name != "digital silence")
    names = list(MotionParams.__dataclass_fields__)
    assert np.all(np.isfinite(x))
    for v in x:
        np.testing.assert_array_equal(MotionParams.from_vector(v).clipped().to_vector(), v)
    assert np.abs(np.diff(x[:, names.index("head_yaw")])).max() <= 0.05
    if name == "digital silence":
        assert x[:, names.index("jaw_open")].max() <= 0.01  # silence: the mouth stays closed


def test_one_sample_chunks_with_stage_b_do_not_crash():
    model = model_for(shipped("lipsync_stage_a"), shipped(STUDENT))
    rng = np.random.default_rng(2)
    for i in range(2000):
        v = model.step(rng.normal(0, 3000, 1).astype(np.int16), True).to_vector()
        assert np.all(np.isfinite(v))
    model.step(np.zeros(0, np.int16), True)
    assert model.late_frames > 0


def test_pipeline_leaves_head_and_blinks_to_stage_b():
    """With stage B driving, the idle behaviour only breathes: the frame's yaw and blink are stage B's."""
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.pipeline import FramePipeline

    model = model_for(shipped("lipsync_stage_a"), shipped(STUDENT))
    pipe = FramePipeline(load_portrait(DEFAULT_PORTRAIT), FPS, motion_model=model)
    got, want = [], []
    for _ in range(150):
        out = pipe.step(np.zeros(SLICE, np.int16), render=False)
        if out is not None:
            got.append((out.params.head_yaw, out.params.blink_l))
            want.append(model.behaviour.value_at(model.last_hop)[[0, 4]])
    assert not pipe.idle.head_and_blinks
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-6)
    assert OUTPUTS == ("head_yaw", "head_pitch", "head_roll", "brow_raise", "blink")
