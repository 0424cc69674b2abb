"""Audio augmentation for training: the clean synthesized speech made to sound like a real line.

Every function takes and returns 16 kHz mono int16 of the same length, is
deterministic given the `numpy.random.Generator`, and never returns NaN. None of
them shifts the audio in time (zero-phase filters, reverb with the direct sound at
lag 0, codec delay removed), so the per-hop targets stay aligned. The one change of
length, leading/trailing silence, is `pad_silence`, which pads the targets with it.

`augment` draws a random chain; the pieces are public for tests and experiments.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import butter, fftconvolve, resample_poly, sosfiltfilt

SAMPLE_RATE = 16000
HOP = 160


def _f(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(x, dtype=np.float64) / 32768.0)


def _i16(y: np.ndarray) -> np.ndarray:
    y = np.nan_to_num(y, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(y ** 2))) if len(y) else 0.0


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def warp_bins(x: np.ndarray, factor: float) -> np.ndarray:
    """Stretch the last axis (frequency bins) by `factor`: bin i takes the value at bin i / factor (linear
    interpolation, the edges held). A shorter vocal tract (factor > 1) moves every formant up by about this factor.
    Used on log-mel frames (stage A's VTLP) and on WORLD's spectral envelopes (speaker.py)."""
    if factor == 1.0:
        return x
    n = x.shape[-1]
    src = np.clip(np.arange(n, dtype=np.float64) / factor, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = src - lo
    return x[..., lo] * (1 - w) + x[..., hi] * w


def coloured_noise(n: int, rng: np.random.Generator, kind: str = "white") -> np.ndarray:
    """Unit-RMS noise: white, pink (1/f power) or brown (1/f²), shaped in the frequency domain."""
    w = rng.standard_normal(n)
    if kind != "white" and n > 1:
        m = next_fast_len(n)  # an FFT of a prime length is slow
        spec = np.fft.rfft(rng.standard_normal(m))
        f = np.fft.rfftfreq(m)
        f[0] = f[1]
        spec /= f ** (0.5 if kind == "pink" else 1.0)
        w = np.fft.irfft(spec, m)[:n]
    return w / max(_rms(w), 1e-12)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float, kind: str = "white") -> np.ndarray:
    y = _f(x)
    level = max(_rms(y), 1e-4) / 10 ** (snr_db / 20)
    return _i16(y + level * coloured_noise(len(y), rng, kind))


def mic_floor(x: np.ndarray, rng: np.random.Generator, dbfs: float) -> np.ndarray:
    """A constant microphone/room noise floor at `dbfs` (so silence is never digital zero)."""
    return _i16(_f(x) + 10 ** (dbfs / 20) * coloured_noise(len(x), rng, "pink"))


def add_babble(x: np.ndarray, others: list[np.ndarray], rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Other voices underneath: a few other utterances, at random offsets, looped to length."""
    y = _f(x)
    if not others or not len(y):
        return x
    mix = np.zeros(len(y))
    for k in rng.choice(len(others), size=min(len(others), int(rng.integers(1, 4))), replace=False):
        o = _f(others[k])
        if len(o):
            mix += np.roll(np.resize(o, len(y)), int(rng.integers(len(y))))
    if _rms(mix) < 1e-6:
        return x
    return _i16(y + mix * max(_rms(y), 1e-4) / _rms(mix) / 10 ** (snr_db / 20))


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, wet: float) -> np.ndarray:
    """A synthetic room: the direct sound at lag 0 plus exponentially decaying noise (60 dB in rt60 s)."""
    y = _f(x)
    n_ir = max(int(rt60 * SAMPLE_RATE), 2)
    t = np.arange(n_ir) / SAMPLE_RATE
    tail = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)  # ln(1000) = 6.9: -60 dB at rt60
    tail[: int(0.003 * SAMPLE_RATE)] = 0.0  # first reflections arrive a few ms after the direct sound
    ir = wet * tail / max(np.sqrt(np.sum(tail ** 2)), 1e-12)
    ir[0] += 1.0
    out = fftconvolve(y, ir)[: len(y)]
    return _i16(out * _rms(y) / max(_rms(out), 1e-12))


def gain(x: np.ndarray, db: float) -> np.ndarray:
    return _i16(_f(x) * 10 ** (db / 20))


def band_limit(x: np.ndarray, low_hz: float | None, high_hz: float | None, order: int = 4) -> np.ndarray:
    """Zero-phase band limiting (e.g. telephone 300–3400 Hz); None leaves that side open."""
    nyq = SAMPLE_RATE / 2
    if low_hz and high_hz:
        sos = butter(order, [low_hz / nyq, high_hz / nyq], btype="band", output="sos")
    elif high_hz:
        sos = butter(order, high_hz / nyq, btype="low", output="sos")
    elif low_hz:
        sos = butter(order, low_hz / nyq, btype="high", output="sos")
    else:
        return x
    y = _f(x)
    return _i16(sosfiltfilt(sos, y)) if len(y) > 3 * (2 * len(sos) + 1) else x


def resample_roundtrip(x: np.ndarray, rate: int) -> np.ndarray:
    """Down (or up) to `rate` and back: what a device running at another rate leaves behind."""
    g = np.gcd(rate, SAMPLE_RATE)
    y = resample_poly(_f(x), rate // g, SAMPLE_RATE // g)
    return _i16(_fit(resample_poly(y, SAMPLE_RATE // g, rate // g), len(x)))


def mulaw_roundtrip(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """G.711 µ-law companding with 8-bit quantisation."""
    y = np.clip(_f(x), -1, 1)
    c = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    q = np.round((c + 1) / 2 * mu) / mu * 2 - 1
    return _i16(np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu)


_OPUS_PRESKIP_48K = 312  # libopus's encoder delay at 48 kHz (6.5 ms); measured, removed to stay aligned


def opus_roundtrip(x: np.ndarray, bitrate: int) -> np.ndarray:
    """Encode with libopus at `bitrate` bit/s and decode (through PyAV), delay removed."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = SAMPLE_RATE, "mono", "s16", int(bitrate)
    enc.time_base = Fraction(1, SAMPLE_RATE)
    dec = av.CodecContext.create("libopus", "r")
    dec.layout = "mono"
    fs = enc.frame_size or 320
    pcm = np.concatenate([np.asarray(x, dtype=np.int16), np.zeros(-len(x) % fs + fs, np.int16)])
    decoded = []
    for i in range(0, len(pcm) + 1, fs):
        frame = None
        if i < len(pcm):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + fs], format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, i
        for packet in enc.encode(frame):  # frame None flushes
            for d in dec.decode(packet):
                scale = 32768.0 if d.format.name.startswith("flt") else 1.0  # float output is in [-1, 1]
                a = d.to_ndarray()
                first = a.reshape(-1, len(d.layout.channels))[:, 0] if d.format.is_packed else a[0]
                decoded.append(first.astype(np.float64) * scale)
    y = np.concatenate(decoded) if decoded else np.zeros(0)
    rate = dec.sample_rate or 48000
    y = y[_OPUS_PRESKIP_48K * rate // 48000:]
    g = np.gcd(rate, SAMPLE_RATE)
    y = resample_poly(y / 32768.0, SAMPLE_RATE // g, rate // g)
    return _i16(_fit(y, len(x)))


def hard_clip(x: np.ndarray, drive_db: float) -> np.ndarray:
    """Overdrive: amplify by `drive_db` and clip at full scale (a hot microphone preamp)."""
    y = _f(x)
    peak = max(np.max(np.abs(y), initial=0.0), 1e-4)
    return _i16(np.clip(y / peak * 10 ** (drive_db / 20), -1.0, 1.0) * 0.99)


def pad_silence(audio: np.ndarray, visemes: np.ndarray, articulation: np.ndarray, rng: np.random.Generator,
                max_s: float = 0.6, floor_dbfs: float = -60.0):
    """Add leading/trailing silence (whole hops, with a mic noise floor) and pad the targets with rest."""
    lead, trail = (int(rng.integers(0, int(max_s / 0.01) + 1)) for _ in range(2))
    noise = 10 ** (floor_dbfs / 20) * coloured_noise(HOP * (lead + trail), rng, "pink")
    a = np.concatenate([_i16(noise[: HOP * lead]), np.asarray(audio, np.int16), _i16(noise[HOP * lead:])])
    v = np.concatenate([np.zeros(lead, visemes.dtype), visemes, np.zeros(trail, visemes.dtype)])
    art = np.concatenate([np.zeros((lead, articulation.shape[1]), articulation.dtype), articulation,
                          np.zeros((trail, articulation.shape[1]), articulation.dtype)])
    return a, v, art


def augment(x: np.ndarray, rng: np.random.Generator, others: list[np.ndarray] | None = None,
            p: float = 0.5) -> np.ndarray:
    """A random chain of the above; each step applies with probability about `p` (0: clean).

    Order follows the signal path: room → other talkers and noise → microphone
    (band, gain, clipping) → line (resampling, codec).
    """
    y = np.asarray(x, dtype=np.int16)
    if rng.random() < p * 0.8:
        y = reverb(y, rng, rt60=rng.uniform(0.1, 0.7), wet=rng.uniform(0.1, 0.6))
    if others and rng.random() < p * 0.4:
        y = add_babble(y, others, rng, snr_db=rng.uniform(10, 25))
    if rng.random() < p:
        y = add_noise(y, rng, snr_db=rng.uniform(5, 35), kind=rng.choice(["white", "pink", "brown"]))
    if rng.random() < 0.9:  # silence is (almost) never digital zero in a real recording
        y = mic_floor(y, rng, dbfs=rng.uniform(-75, -45))
    if rng.random() < p * 0.6:
        low, high = [(300, 3400), (100, 7000), (None, 4000), (200, None), (None, 5500)][int(rng.integers(5))]
        y = band_limit(y, low, high)
    if rng.random() < p:
        y = gain(y, rng.uniform(-20, 6))
    if rng.random() < p * 0.15:
        y = hard_clip(y, drive_db=rng.uniform(1, 12))
    if rng.random() < p * 0.3:
        y = resample_roundtrip(y, int(rng.choice([8000, 11025, 22050, 44100])))
    r = rng.random()
    if r < p * 0.3:
        y = opus_roundtrip(y, int(rng.choice([6000, 8000, 12000, 16000, 24000])))
    elif r < p * 0.4:
        y = mulaw_roundtrip(y)
    return y
