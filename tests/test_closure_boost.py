"""The closure boost (avatar_rt.motion.closure_boost): PocketSphinx's P+B+M beside stage A's lip press — loads from
the manifest (or is off without one), streams in any chunks as offline, presses on a bilabial sentence and not on
noise or tones, and the lip sync shows the larger of the two."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from avatar_rt import engines
from avatar_rt.audio.phone_features import ENGINE_NAME as PHONE_ENGINE
from avatar_rt.audio.phone_posteriors import AcousticModel, phone_posteriors
from avatar_rt.motion.closure_boost import ClosureBoost
from avatar_rt.motion.lipsync import LipSyncModel, load_session
from conftest import espeak, resample


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    audio, sr = espeak("Maybe Bob will pay the man a bit more.", tmp_path_factory.mktemp("boost") / "s.wav")
    return resample(audio, sr, 16000)


def test_loads_from_the_shipped_manifest_and_is_off_without_an_acoustic_model(tmp_path):
    assert ClosureBoost.load() is not None
    manifest = json.loads((engines.ENGINES_DIR / engines.MANIFEST_NAME).read_text())
    del manifest["engines"][PHONE_ENGINE]
    (tmp_path / engines.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert ClosureBoost.load(tmp_path) is None


def test_a_corrupt_acoustic_model_is_an_error_naming_it(tmp_path):
    shutil.copy(engines.ENGINES_DIR / engines.MANIFEST_NAME, tmp_path)
    (tmp_path / f"{PHONE_ENGINE}.npz").write_bytes(b"not a model")
    with pytest.raises(engines.EngineError, match=PHONE_ENGINE):
        ClosureBoost.load(tmp_path)


def test_streaming_in_uneven_chunks_scores_as_offline(speech):
    boost = ClosureBoost.load()
    model = AcousticModel.load(engines.engine_path(PHONE_ENGINE))
    ph = list(model.phones)
    want = phone_posteriors(model, speech)[:, [ph.index(p) for p in ("P", "B", "M")]].sum(axis=1)
    rng = np.random.default_rng(5)
    i = 0
    while i < len(speech):
        n = int(rng.choice([1, 7, 160, 333, 640, 2000]))
        boost.push(speech[i:i + n])
        i += n
    assert boost.score(boost.rows) is None and boost.press(boost.rows + 10) == 0.0  # not final yet: no press
    got = np.array([boost.score(h) for h in range(boost.rows)])
    assert boost.rows >= len(want) - 4  # the last rows wait for the deltas' lookahead
    np.testing.assert_allclose(got, want[:boost.rows], atol=1e-4)


def test_presses_on_bilabial_speech_and_not_on_noise_or_tones(speech):
    boost = ClosureBoost.load()
    boost.push(speech)
    assert max(boost.press(h) for h in range(boost.rows)) >= 0.99

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    for name, audio in (("white noise", rng.normal(0, 3000, len(t))),
                        ("a chord", 4000 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t)))):
        boost.reset()
        boost.push(audio.astype(np.int16))
        pressed = np.mean([boost.press(h) >= 0.5 for h in range(boost.rows)])
        assert pressed <= 0.02, f"{name}: {pressed:.1%} of hops pressed"


def test_lip_sync_shows_the_larger_of_stage_a_and_the_boost(tmp_path):
    """Without the VAD gate the shown press is exactly max(stage A's press, the boost's press at the shown hop)."""
    audio, sr = espeak("Bob's big map made my mum pump a bumpy boat, maybe by the mill, Pam.", tmp_path / "b.wav")
    speech = resample(audio, sr, 16000)
    session = load_session(engines.engine_path("lipsync_stage_a"))
    pcm = np.concatenate([speech, np.zeros(16000 // 2, np.int16)])
    presses, boosted = {}, []
    for on in (False, True):
        model = LipSyncModel(25.0, session=session, closure_boost=on, vad_gate=False)
        assert (model.stream.closure_boost is not None) == on
        out = []
        for m in range(len(pcm) // 640):
            out.append(model.step(pcm[640 * m:640 * (m + 1)], True).lip_press)
            if on:
                boosted.append(model.stream.closure_boost.press(model.last_hop) if model.last_hop >= 0 else 0.0)
        presses[on] = np.array(out)
    np.testing.assert_allclose(presses[True], np.maximum(presses[False], boosted), atol=1e-6)
    assert max(boosted) >= 0.5  # the boost did have p/b/m to show at the frames' hops
