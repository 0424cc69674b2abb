"""The adaptive input jitter buffer: trims the excess a stall left behind, only in quiet audio, and backs off
after an underrun."""

from __future__ import annotations

import numpy as np

from avatar_rt.audio.adaptive_jitter import AdaptiveJitterBuffer
from avatar_rt.audio.ingress import CHUNK_SAMPLES, AudioChunk

SLICE = 640  # 40 ms: one 25 fps frame


def feed(jb: AdaptiveJitterBuffer, seconds: float, loud: bool, backlog_chunks: int = 0) -> tuple[list[int], np.ndarray]:
    """Packets of two 10 ms chunks every 20 ms, a 40 ms slice taken every 40 ms; returns the level before each
    pop and everything popped. Sample values count up, so a gap or repeat shows."""
    rng = np.random.default_rng(0)
    amp = 8000 if loud else 30
    counter = 0

    def chunk() -> AudioChunk:
        nonlocal counter
        base = np.arange(counter, counter + CHUNK_SAMPLES) % 2
        counter += CHUNK_SAMPLES
        return AudioChunk((amp * (2 * base - 1) + rng.integers(-3, 4, CHUNK_SAMPLES)).astype(np.int16), 0.0)

    for _ in range(backlog_chunks):
        jb.push(chunk())
    levels, out = [], []
    for step in range(int(seconds * 100)):  # 10 ms steps
        if step % 2 == 0:
            jb.push(chunk())
            jb.push(chunk())
        if step % 4 == 3:
            levels.append(jb.level_samples)
            out.append(jb.pop(SLICE)[0])
    return levels, np.concatenate(out)


def test_a_backlog_of_silence_is_trimmed_to_the_margin():
    jb = AdaptiveJitterBuffer()
    levels, _ = feed(jb, 8.0, loud=False, backlog_chunks=15)  # a 150 ms stall's worth of extra audio
    print(f"level before pop: first {levels[10]} samples, last {levels[-1]}; trimmed {jb.trimmed_samples}")
    assert levels[10] >= SLICE + 15 * CHUNK_SAMPLES
    assert levels[-1] <= SLICE + jb.margin + CHUNK_SAMPLES  # one slice, the margin, at most a chunk over
    assert jb.underruns == 0


def test_speech_is_never_trimmed():
    jb = AdaptiveJitterBuffer()
    levels, out = feed(jb, 8.0, loud=True, backlog_chunks=15)
    assert jb.trimmed_samples == 0
    assert levels[-1] >= SLICE + 15 * CHUNK_SAMPLES  # the excess waits for a pause
    # Nothing lost or repeated: the alternating sign pattern continues across every slice boundary.
    played = out[np.abs(out) > 1000]
    assert np.all(np.sign(played[1:]) != np.sign(played[:-1]))


def test_an_underrun_raises_the_margin():
    jb = AdaptiveJitterBuffer(start_ms=40.0, margin_ms=10.0)
    for _ in range(4):
        jb.push(AudioChunk(np.zeros(CHUNK_SAMPLES, dtype=np.int16), 0.0))
    before = jb.margin
    jb.pop(SLICE)  # starts playing: exactly one slice was there
    jb.pop(SLICE)  # nothing came: underrun
    assert jb.underruns == 1 and jb.margin > before
