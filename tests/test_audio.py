"""Audio front end: ingress (any rate/layout → 16 kHz mono 10 ms chunks), jitter buffer, VAD.

These are the first stages of the one media clock: if they lose, duplicate or
reorder samples, lips and voice drift apart; if a buffer grows without bound,
latency grows with it. Everything here is real (PyAV resampler, webrtcvad,
espeak-ng speech), and cheap enough to run in well under a second.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from avatar_rt.audio.ingress import CHUNK_SAMPLES, SAMPLE_RATE, AudioChunk, AudioIngress, Rechunker
from avatar_rt.audio.jitter import AudioJitterBuffer
from avatar_rt.audio.vad import SpeechDetector
from conftest import espeak, resample

# --------------------------------------------------------------------------- Rechunker


def test_rechunker_yields_exact_chunks_without_losing_or_duplicating_samples():
    """The resampler's output size varies per frame; the chunks must still be an exact, gapless split."""
    rng = np.random.default_rng(1)
    rechunker = Rechunker()
    pushed, chunks = [], []
    # Sizes from empty to several chunks, so both the "no chunk yet" and "many chunks at once" paths run.
    for size in rng.integers(0, 700, size=400):
        block = rng.integers(-32768, 32767, size=int(size), dtype=np.int16)
        pushed.append(block)
        chunks.extend(rechunker.push(block))
    data = np.concatenate(pushed)

    assert chunks, "no chunk was produced"
    assert all(c.shape == (CHUNK_SAMPLES,) and c.dtype == np.int16 for c in chunks)
    out = np.concatenate(chunks)
    # Exactly the whole chunks that fit; the remainder (< one chunk) is still held, not lost.
    assert len(out) == len(data) // CHUNK_SAMPLES * CHUNK_SAMPLES
    np.testing.assert_array_equal(out, data[: len(out)])


def test_rechunker_chunks_do_not_alias_the_callers_buffer():
    """A producer that reuses its buffer must not change chunks already handed out."""
    rechunker = Rechunker()
    buf = np.arange(CHUNK_SAMPLES * 2, dtype=np.int16)
    chunks = rechunker.push(buf)
    buf[:] = -1
    np.testing.assert_array_equal(np.concatenate(chunks), np.arange(CHUNK_SAMPLES * 2, dtype=np.int16))


# --------------------------------------------------------------------------- AudioIngress


def webrtc_frames(mono48k: np.ndarray) -> list[av.AudioFrame]:
    """What aiortc's Opus decoder hands the server: 20 ms, 48 kHz, packed stereo s16, with pts."""
    frames = []
    for i in range(0, len(mono48k) - 959, 960):
        stereo = np.repeat(mono48k[i:i + 960], 2)  # L R L R … interleaved
        frame = av.AudioFrame.from_ndarray(stereo.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 48_000
        frame.pts = i
        frame.time_base = fractions.Fraction(1, 48_000)
        frames.append(frame)
    return frames


def test_ingress_turns_webrtc_stereo_48k_into_16k_mono_chunks_of_the_same_tone():
    seconds, freq, amp = 2.0, 440.0, 0.5
    t = np.arange(int(48_000 * seconds)) / 48_000
    tone = (amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)

    ingress = AudioIngress()
    chunks: list[AudioChunk] = []
    for k, frame in enumerate(webrtc_frames(tone)):
        got = ingress.push_frame(frame, arrival=float(k))
        # Every chunk carries the arrival time of the frame it came in.
        assert all(c.arrival == float(k) for c in got)
        chunks.extend(got)

    assert all(c.samples.shape == (CHUNK_SAMPLES,) and c.samples.dtype == np.int16 for c in chunks)
    out = np.concatenate([c.samples for c in chunks])
    duration = len(out) / SAMPLE_RATE
    print(f"ingress: {len(chunks)} chunks, {duration:.4f} s out of {seconds} s in")
    # The resampler holds back a few ms of filter delay; nothing more may go missing.
    assert abs(duration - seconds) <= 0.020

    # Still a 440 Hz tone (not 3× too fast/slow from a wrong rate, not garbled by a
    # wrong channel layout), at about the same level (stereo → mono is not a sum that clips).
    steady = out[SAMPLE_RATE // 10:].astype(np.float64)  # skip the resampler's warm-up
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    peak_hz = np.fft.rfftfreq(len(steady), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))]
    print(f"ingress: FFT peak at {peak_hz:.1f} Hz, peak amplitude {np.abs(steady).max():.0f}")
    assert abs(peak_hz - freq) <= 2.0
    assert 0.8 * amp * 32767 <= np.abs(steady).max() <= 1.05 * amp * 32767


@pytest.mark.parametrize("rate", [16_000, 24_000, 48_000])
def test_ingress_push_pcm_survives_nan_and_out_of_range_floats(rate):
    """Agent-pushed float PCM may be garbage (NaN, > 1): it must not crash and must give finite int16."""
    rng = np.random.default_rng(2)
    pcm = rng.uniform(-3.0, 3.0, size=rate // 2).astype(np.float32)  # 0.5 s, mostly beyond ±1
    pcm[::7] = np.nan
    pcm[::11] = np.inf
    pcm[::13] = -np.inf

    chunks = AudioIngress().push_pcm(pcm, rate)

    assert chunks, "0.5 s of audio produced no chunks"
    out = np.concatenate([c.samples for c in chunks])
    assert out.dtype == np.int16
    assert all(len(c.samples) == CHUNK_SAMPLES for c in chunks)
    # ~0.5 s in at 16 kHz (minus the resampler's delay at most).
    assert abs(len(out) / SAMPLE_RATE - 0.5) <= 0.02
    assert np.abs(out.astype(np.int32)).max() > 10_000, "clipped input came out (nearly) silent"


def test_ingress_push_pcm_keeps_interleaved_stereo_together():
    """(n, 2) int16 from a file: a tone on both channels is still that tone at 16 kHz."""
    t = np.arange(24_000) / 24_000
    mono = (10_000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    chunks = AudioIngress().push_pcm(np.stack([mono, mono], axis=1), 24_000)
    out = np.concatenate([c.samples for c in chunks]).astype(np.float64)
    assert abs(len(out) / SAMPLE_RATE - 1.0) <= 0.02
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    assert abs(np.fft.rfftfreq(len(out), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))] - 300) <= 2.0


# --------------------------------------------------------------------------- AudioJitterBuffer


def ramp_chunks(n_chunks: int, start: int = 0) -> list[AudioChunk]:
    """Chunks whose sample values are their position on the timeline, and arrival = chunk number."""
    return [AudioChunk(np.arange(start + i * CHUNK_SAMPLES, start + (i + 1) * CHUNK_SAMPLES, dtype=np.int16),
                       arrival=float(start // CHUNK_SAMPLES + i)) for i in range(n_chunks)]


def test_jitter_buffer_is_silent_until_target_then_gives_exact_slices_in_order():
    jb = AudioJitterBuffer(target_ms=60, max_ms=240)  # target = 960 samples = 6 chunks
    chunks = ramp_chunks(20)
    for c in chunks[:5]:
        jb.push(c)
    # Below target: silence, and no real sample consumed (nothing has arrived "for" this frame).
    out, arrival = jb.pop(640)
    np.testing.assert_array_equal(out, np.zeros(640, dtype=np.int16))
    assert arrival is None
    assert jb.level_samples == 5 * CHUNK_SAMPLES

    for c in chunks[5:]:
        jb.push(c)
    # Odd slice sizes (30 fps gives 533/534) must come out back to back, nothing skipped or repeated.
    pos = 0
    for n in (640, 533, 534, 533, 640):
        out, _ = jb.pop(n)
        assert out.dtype == np.int16 and len(out) == n
        np.testing.assert_array_equal(out, np.arange(pos, pos + n, dtype=np.int16))
        pos += n
    assert jb.underruns == 0
    assert jb.dropped_samples == 0


def test_jitter_buffer_underrun_pads_with_silence_counts_and_refills_to_target():
    jb = AudioJitterBuffer(target_ms=60, max_ms=240)
    for c in ramp_chunks(6):  # 960 samples: exactly the target
        jb.push(c)
    out, _ = jb.pop(640)
    np.testing.assert_array_equal(out, np.arange(640, dtype=np.int16))
    out, arrival = jb.pop(640)  # only 320 real samples left
    assert len(out) == 640
    np.testing.assert_array_equal(out[:320], np.arange(640, 960, dtype=np.int16))
    np.testing.assert_array_equal(out[320:], np.zeros(320, dtype=np.int16))
    assert arrival == 5.0  # the newest real sample in the slice came with chunk 5
    assert jb.underruns == 1

    # After an underrun it waits for `target` again instead of playing out each chunk as it trickles in.
    for c in ramp_chunks(3, start=960):
        jb.push(c)
    out, arrival = jb.pop(320)
    np.testing.assert_array_equal(out, np.zeros(320, dtype=np.int16))
    assert arrival is None
    for c in ramp_chunks(3, start=960 + 480):
        jb.push(c)
    out, _ = jb.pop(640)
    np.testing.assert_array_equal(out, np.arange(960, 960 + 640, dtype=np.int16))
    assert jb.underruns == 1


def test_jitter_buffer_latency_stays_bounded_when_the_consumer_stalls():
    """A burst of 2 s with nobody popping: the level never exceeds max, and the *oldest* audio goes."""
    jb = AudioJitterBuffer(target_ms=60, max_ms=240)
    total = 0
    values = np.arange(200 * CHUNK_SAMPLES) % 30_000  # int16-safe, still increasing within any short window
    for i in range(200):
        jb.push(AudioChunk(values[i * CHUNK_SAMPLES:(i + 1) * CHUNK_SAMPLES].astype(np.int16), arrival=float(i)))
        total += CHUNK_SAMPLES
        assert jb.level_samples <= jb.max
    print(f"jitter: pushed {total}, level {jb.level_samples}, dropped {jb.dropped_samples}")
    assert jb.dropped_samples > 0
    assert jb.dropped_samples + jb.level_samples == total  # every sample accounted for
    # What is left is the newest audio, so playout resumes close to live.
    out, arrival = jb.pop(jb.level_samples)
    np.testing.assert_array_equal(out, values[total - len(out):].astype(np.int16))
    assert arrival == 199.0


def test_jitter_buffer_pop_reports_arrival_of_newest_real_sample():
    """The latency metric uses this stamp: it must be the newest sample's, not the oldest's."""
    jb = AudioJitterBuffer(target_ms=60, max_ms=240)
    for c in ramp_chunks(10):
        jb.push(c)
    _, arrival = jb.pop(640)  # samples 0..639: chunks 0..3
    assert arrival == 3.0
    _, arrival = jb.pop(200)  # samples 640..839: the rest of chunk 4 and part of chunk 5
    assert arrival == 5.0
    _, arrival = jb.pop(120)  # 840..959: the rest of chunk 5
    assert arrival == 5.0


# --------------------------------------------------------------------------- SpeechDetector


def run_vad(pcm: np.ndarray, block: int = CHUNK_SAMPLES) -> np.ndarray:
    """Per-10 ms speaking state; pushed in `block`-sample pieces as a caller would."""
    det = SpeechDetector()
    states = []
    for i in range(0, len(pcm) - block + 1, block):
        det.push(pcm[i:i + block])
        states.extend([det.speaking] * (block // CHUNK_SAMPLES))
    return np.array(states)


@pytest.fixture(scope="module")
def sentence_16k(tmp_path_factory) -> np.ndarray:
    pcm, rate = espeak("Hello there, I am your avatar, and I speak whatever you say.",
                       tmp_path_factory.mktemp("vad") / "s.wav")
    return resample(pcm, rate, SAMPLE_RATE)


def test_vad_detects_speech_after_onset_and_releases_after_hangover(sentence_16k):
    silence = np.zeros(SAMPLE_RATE, dtype=np.int16)
    pcm = np.concatenate([silence, sentence_16k, silence])
    loud = np.nonzero(np.abs(sentence_16k.astype(np.int32)) > 300)[0]
    start = (SAMPLE_RATE + loud[0]) // CHUNK_SAMPLES  # first loud chunk
    end = (SAMPLE_RATE + loud[-1]) // CHUNK_SAMPLES  # last loud chunk
    hangover = 25  # chunks (250 ms), the detector's default

    states = run_vad(pcm)
    # The pipeline pushes 640-sample slices (25 fps): rechunking inside must give the same decisions.
    by_slice = run_vad(pcm, block=640)
    np.testing.assert_array_equal(by_slice[3::4], states[3:len(by_slice):4])
    print(f"vad: speech chunks {start}..{end}, speaking fraction during speech "
          f"{states[start + 10:end].mean():.2f}")

    assert not states[: start].any(), "speech reported during leading silence"
    # Onset needs 3 voiced chunks; allow 100 ms, and then the word gaps must not drop it.
    assert states[start + 10:end].mean() >= 0.9
    # Off again once the hangover has passed, for the rest of the silence. webrtcvad keeps
    # saying "voiced" for ~100 ms of digital silence on its own, so allow 200 ms on top of ours.
    assert not states[end + hangover + 20:].any(), "speech still reported well after the hangover"
    # …but the hangover does hold it on through the short gap right after the last word.
    assert states[end:end + hangover].all()


def test_vad_quiet_white_noise_is_mostly_not_speech():
    """Room noise must not open the mouth: ~-50 dBFS white noise for 3 s."""
    noise = np.random.default_rng(3).normal(0, 100, size=3 * SAMPLE_RATE).astype(np.int16)
    states = run_vad(noise)
    print(f"vad: speaking fraction on noise {states.mean():.2f}")
    assert states.mean() <= 0.2
    assert not states[-100:].any(), "noise still reported as speech after 2 s"
