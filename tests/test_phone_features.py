"""Stage A's phone-posterior input (avatar_rt.audio.phone_features, avatar_rt.audio.phone_posteriors) with the
shipped acoustic model engines/phone_am.npz: streaming in uneven chunks = offline, bad audio stays finite, and the
posteriors hear the phones of real speech."""

from __future__ import annotations

import numpy as np
import pytest

from avatar_rt import engines
from avatar_rt.audio.features import HOP
from avatar_rt.audio.phone_features import (DELAY_HOPS, ENGINE_NAME, PhoneFeatures, PhoneFeatureStream, PhoneStats,
                                            phone_features)
from avatar_rt.audio.phone_posteriors import AcousticModel, phone_posteriors
from conftest import espeak, resample


@pytest.fixture(scope="module")
def front() -> PhoneFeatures:
    model = AcousticModel.load(engines.engine_path(ENGINE_NAME))
    return PhoneFeatures(model, PhoneStats.identity(len(model.phones)))


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    audio, sr = espeak("Maybe Bob will pay the man a bit more.", tmp_path_factory.mktemp("phones") / "s.wav")
    return resample(audio, sr, 16000)


def test_shipped_model_has_the_ptm_shape(front):
    m = front.model
    assert len(m.phones) == 42 and {"P", "B", "M", "SIL"} <= set(m.phones)
    assert m.proj.shape == (3, 26, 42 * 128) and m.log_w.shape == (3, 126, 128)


def test_streaming_in_uneven_chunks_equals_offline(front, speech):
    want = phone_features(front, speech)
    assert want.shape == (len(speech) // HOP, 42)
    assert np.all(want[:DELAY_HOPS] == 0) and np.abs(want[DELAY_HOPS:]).max() > 1
    rng = np.random.default_rng(3)
    stream, got, i = PhoneFeatureStream(front), [], 0
    while i < len(speech):
        n = int(rng.choice([1, 7, 160, 333, 640, 2000]))
        got.append(stream.push(speech[i:i + n]))
        i += n
    got = np.concatenate(got)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_posteriors_hear_the_bilabials(front, speech):
    """P(P)+P(B)+P(M) is higher at the bilabials of espeak's sentence than on the rest of it (rough: no alignment,
    so the 10 highest frames of the bilabial sum must be speech, not silence)."""
    post = phone_posteriors(front.model, speech)
    ph = list(front.model.phones)
    pbm = post[:, [ph.index("P"), ph.index("B"), ph.index("M")]].sum(axis=1)
    sil = post[:, ph.index("SIL")]
    top = np.argsort(pbm)[-10:]
    assert pbm.max() > 0.5 and np.all(sil[top] < 0.5)


@pytest.mark.parametrize("audio", [
    np.zeros(16000, np.int16),
    np.where(np.sin(np.arange(16000) * 0.05) > 0, 32767, -32768).astype(np.int16),
    np.where(np.random.default_rng(1).random(16000) < 0.3, np.nan, 1e9),
    np.full(16000, np.inf),
], ids=["silence", "clipping", "nan and huge", "inf"])
def test_bad_audio_stays_finite(front, audio):
    stream = PhoneFeatureStream(front)
    rows = np.concatenate([stream.push(audio[i:i + 1]) for i in range(2000)] + [stream.push(audio[2000:])])
    assert rows.shape == (len(audio) // HOP, 42) and np.all(np.isfinite(rows))
    assert np.all(np.isfinite(phone_features(front, audio)))
