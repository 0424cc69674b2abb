"""Log-mel features (avatar_rt/audio/features.py): the one implementation shared by training and runtime.

Streaming in any chunking must equal the offline function; frames must be causal
and land where docs/lipsync.md says (frame k covers samples [160k − 240, 160k + 160));
bad samples must never reach the normaliser's state.
"""

from __future__ import annotations

import numpy as np
import pytest

from avatar_rt.audio import features
from avatar_rt.audio.features import HOP, N_MELS, FeatureStats, LogMelStream, log_mel
from conftest import espeak, resample


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    d = tmp_path_factory.mktemp("features")
    pcm, rate = espeak("Pop the bubble, Bob; we see the moon at noon.", d / "s.wav")
    pcm = resample(pcm, rate, 16000)
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 30, 8000)  # half a second of quiet microphone noise, then speech, then silence
    return np.concatenate([noise, pcm.astype(np.float64), np.zeros(4000)]).astype(np.int16)


@pytest.fixture(scope="module")
def stats(speech) -> FeatureStats:
    raw, rms_db = features.raw_log_mel_offline(speech)
    return FeatureStats.from_frames(raw[rms_db > features.GATE_DBFS])


def stream_in_chunks(stream: LogMelStream, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    outs, i = [], 0
    sizes = [0, 1, 2, 159, 160, 161, 399, 400, 640, 3001]
    while i < len(audio):
        n = int(rng.choice(sizes))
        outs.append(stream.push(audio[i:i + n]))
        assert stream.frames_done == (i + min(n, len(audio) - i)) // HOP
        i += n
    return np.concatenate(outs)


@pytest.mark.parametrize("normalize", [True, False])
def test_streaming_equals_offline_in_any_chunking(speech, stats, normalize):
    offline = log_mel(speech, stats, normalize=normalize)
    assert offline.shape == (len(speech) // HOP, N_MELS) and offline.dtype == np.float32
    for seed in range(3):
        streamed = stream_in_chunks(LogMelStream(stats, normalize=normalize), speech, np.random.default_rng(seed))
        assert streamed.shape == offline.shape
        err = float(np.abs(streamed - offline).max())
        print(f"normalize={normalize} seed {seed}: max |stream − offline| = {err:.1e}, "
              f"{np.mean(streamed != offline):.1e} of values differ at all")
        assert err <= 1e-5


def test_reset_starts_over(speech, stats):
    s = LogMelStream(stats)
    first = s.push(speech)
    s.reset()
    assert np.array_equal(s.push(speech), first)


def test_frames_are_causal_and_cover_the_documented_samples():
    """An impulse at sample s shows in exactly the frames k with 160k − 240 ≤ s < 160k + 160."""
    n = 4000
    base = log_mel(np.zeros(n), normalize=False)
    for s in (0, 1, 159, 160, 161, 399, 400, 1234, n - 1):
        x = np.zeros(n)
        x[s] = 20000
        touched = np.nonzero(np.any(log_mel(x, normalize=False) != base, axis=1))[0]
        expected = [k for k in range(n // HOP) if 160 * k - 240 <= s < 160 * k + 160]
        assert touched.tolist() == expected, s


def test_nan_and_inf_are_sanitised_not_absorbed(speech, stats):
    bad = speech.astype(np.float64)
    bad[5000:5100] = np.nan
    bad[9000] = np.inf
    bad[9001] = -np.inf
    bad[12000:12010] = 1e9  # far beyond full scale
    ref = bad.copy()
    ref[5000:5100] = 0
    ref[[9000, 12000, 12001, 12002, 12003, 12004, 12005, 12006, 12007, 12008, 12009]] = 32768
    ref[9001] = -32768
    s = LogMelStream(stats)
    out = stream_in_chunks(s, bad, np.random.default_rng(7))
    assert np.all(np.isfinite(out))
    assert np.all(np.isfinite(s.normalizer.mean)) and np.all(np.isfinite(s.normalizer.var))
    np.testing.assert_allclose(out, log_mel(ref, stats), atol=1e-5)
    # A chunk that is nothing but NaN is digital silence.
    only_nan = LogMelStream(stats).push(np.full(1600, np.nan))
    np.testing.assert_array_equal(only_nan, LogMelStream(stats).push(np.zeros(1600, np.int16)))


def test_silence_is_finite_and_leaves_the_statistics_alone(speech, stats):
    """Digital silence or a muted microphone (below the −60 dBFS gate) must not drag the running statistics down,
    so speech after a minute of silence is featurised as if it came first."""
    s = LogMelStream(stats)
    silent = s.push(np.zeros(60 * 16000, np.int16))
    assert np.all(np.isfinite(silent)) and np.abs(silent).max() <= features.CLIP
    s.push(np.random.default_rng(0).normal(0, 10, 16000).astype(np.int16))  # ≈ −70 dBFS hiss
    np.testing.assert_array_equal(s.normalizer.mean, stats.mean)
    s.reset()
    fresh = s.push(speech[8000:])
    s.reset()
    s.push(np.zeros(60 * 16000, np.int16))
    after_silence = s.push(speech[8000:])
    np.testing.assert_allclose(after_silence[2:], fresh[2:], atol=1e-5)  # frames 0–1 straddle the boundary


def test_normaliser_tracks_the_level(speech, stats):
    """30 dB quieter speech: the running mean follows it down (gain invariance), at the 4 s time constant."""
    quiet = (speech.astype(np.float64) * 10 ** (-30 / 20)).astype(np.int16)
    s = LogMelStream(stats)
    for _ in range(6):
        s.push(quiet)
    drop = float(np.mean(stats.mean - s.normalizer.mean))
    print(f"mean log-mel dropped by {drop:.2f} nats (30 dB = {30 / 10 * np.log(10):.2f} nats)")
    assert 2.0 < drop < 8.0


def test_stats_round_trip_and_validation():
    st = FeatureStats(np.linspace(-10, 0, N_MELS), np.linspace(1, 20, N_MELS))
    back = FeatureStats.from_json(st.to_json())
    np.testing.assert_allclose(back.mean, st.mean, atol=1e-6)
    np.testing.assert_allclose(back.var, st.var, atol=1e-6)
    with pytest.raises(ValueError):
        FeatureStats(np.zeros(N_MELS), np.zeros(N_MELS))
    with pytest.raises(ValueError):
        FeatureStats(np.zeros(10), np.ones(10))


def test_filterbank_has_no_empty_filters():
    fb = features.mel_filterbank()
    assert fb.shape == (features.N_FFT // 2 + 1, N_MELS)
    assert np.all((fb > 0).sum(axis=0) >= 2)
