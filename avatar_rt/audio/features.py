"""Causal log-mel features with streaming normalisation — the one implementation shared by training and runtime.

Time base (docs/lipsync.md): 16 kHz mono, 10 ms hop (160 samples), 25 ms Hann
window (400 samples). Feature frame `k` covers samples [160k − 240, 160k + 160):
the window *ends* at the end of hop k, so frame k exists as soon as sample
160k + 159 has arrived, and nothing in it is from the future. Samples before 0
are zeros. After n samples there are exactly n // 160 frames.

Per frame:

1. the 400 samples (int16 scale, divided by 32768), Hann-windowed (no zero end
   points, so every sample counts), zero-padded to
   a 512-point FFT; power spectrum |X|²;
2. 80 triangular mel filters, 0–8 kHz, Slaney scale and area normalisation (the
   librosa / Whisper filterbank): every filter spans at least two FFT bins;
3. natural log of (mel power + 1e-8);
4. streaming normalisation, per mel bin: an exponentially decaying running mean
   and variance (time constant `decay_s`, 4 s), initialised from fixed global
   statistics that ship with the model (`FeatureStats`, in the ONNX metadata).
   Frames quieter than `gate_dbfs` (−60 dBFS RMS over the window: digital
   silence, a muted microphone) do not update the statistics, so a long pause
   cannot drag them down and make the next word look like a shout. The frame is
   normalised with the statistics *after* its own update, the variance is
   floored at a tenth of the global variance, and the result is clipped to ±10.

Input hygiene: samples may be int16 or float in int16 scale; NaN becomes 0, ±inf
and anything beyond full scale are clipped to ±32768, so bad input can make a
frame loud but can never put a non-finite number into the state.

`LogMelStream` is the streaming form (push any number of samples, get every newly
completed frame); `log_mel` is the offline form. Both frame the audio with the
same function and run the same normaliser, so they agree to float rounding
(the tests hold them to 1e-5; in practice they agree bit for bit or within one
float32 ulp, the residue of batched vs single-row BLAS products).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
HOP = 160  # 10 ms
WIN = 400  # 25 ms
LOOKBACK = WIN - HOP  # 240 samples of the previous hops in every window
N_FFT = 512
N_MELS = 80
F_MIN, F_MAX = 0.0, 8000.0
LOG_FLOOR = 1e-8
DECAY_S = 4.0
GATE_DBFS = -60.0
VAR_FLOOR_RATIO = 0.1
CLIP = 10.0

# Symmetric Hann without its zero end points (np.hanning(WIN + 2)[1:-1]): every one of the 400 samples
# has weight, so the frame really covers [160k − 240, 160k + 160) — no sample at either edge is dropped.
_WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(1, WIN + 1) / (WIN + 1))).astype(np.float64)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 per 200 Hz), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) float64: power spectrum → mel power (librosa's `mel`, htk=False, norm='slaney')."""
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return np.ascontiguousarray(weights.T)


_FILTERBANK = mel_filterbank()


@dataclass(frozen=True)
class FeatureStats:
    """Global per-bin mean and variance of the raw log-mel, the normaliser's starting point."""

    mean: np.ndarray  # (N_MELS,) float64
    var: np.ndarray  # (N_MELS,) float64

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        var = np.asarray(self.var, dtype=np.float64).reshape(-1)
        if mean.shape != (N_MELS,) or var.shape != (N_MELS,):
            raise ValueError(f"feature stats need {N_MELS} means and variances, got {mean.shape}, {var.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var > 0)):
            raise ValueError("feature stats must be finite with positive variances")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "var", var)

    @classmethod
    def identity(cls) -> FeatureStats:
        """Mean 0, variance 1: for tests and for computing the real statistics."""
        return cls(np.zeros(N_MELS), np.ones(N_MELS))

    @classmethod
    def from_frames(cls, raw: np.ndarray) -> FeatureStats:
        """From raw (unnormalised) log-mel frames (n, N_MELS), e.g. the gated frames of a training set."""
        raw = np.asarray(raw, dtype=np.float64)
        return cls(raw.mean(axis=0), np.maximum(raw.var(axis=0), 1e-6))

    def to_json(self) -> str:
        return json.dumps({"mean": [round(float(v), 6) for v in self.mean],
                           "var": [round(float(v), 6) for v in self.var]})

    @classmethod
    def from_json(cls, text: str) -> FeatureStats:
        data = json.loads(text)
        return cls(np.array(data["mean"], dtype=np.float64), np.array(data["var"], dtype=np.float64))


def config() -> dict:
    """Everything that defines the features; stored with a model so a runtime can refuse a mismatch."""
    return {"sample_rate": SAMPLE_RATE, "hop": HOP, "win": WIN, "n_fft": N_FFT, "n_mels": N_MELS,
            "f_min": F_MIN, "f_max": F_MAX, "log_floor": LOG_FLOOR, "window": "hann-open",
            "mel": "slaney", "decay_s": DECAY_S, "gate_dbfs": GATE_DBFS, "var_floor_ratio": VAR_FLOOR_RATIO,
            "clip": CLIP}


def sanitize(samples: np.ndarray) -> np.ndarray:
    """int16-scale samples (any dtype) → float64 in [−1, 1]; NaN → 0, ±inf and overs clipped to full scale."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    x = np.nan_to_num(x, nan=0.0, posinf=32768.0, neginf=-32768.0)
    return np.clip(x, -32768.0, 32768.0) / 32768.0


def frame_signal(padded: np.ndarray) -> np.ndarray:
    """(LOOKBACK + HOP·n + r,) samples → (n, WIN) windows, hop HOP (a strided view: no copy)."""
    n = (len(padded) - LOOKBACK) // HOP
    if n <= 0:
        return np.zeros((0, WIN), dtype=padded.dtype)
    return np.lib.stride_tricks.as_strided(padded, shape=(n, WIN), strides=(HOP * padded.strides[0], padded.strides[0]),
                                           writeable=False)


def raw_log_mel(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, WIN) float64 windows in [−1, 1] → (log-mel (n, N_MELS) float64, window RMS in dBFS (n,))."""
    if len(frames) == 0:
        return np.zeros((0, N_MELS)), np.zeros(0)
    spec = np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=1)
    power = spec.real**2 + spec.imag**2
    mel = np.log(power @ _FILTERBANK + LOG_FLOOR)
    rms_db = 10.0 * np.log10(np.mean(np.square(frames), axis=1) + 1e-20)
    return mel, rms_db


class StreamingNormalizer:
    """Per-bin running mean/variance with exponential decay, gated by loudness; see the module docstring."""

    def __init__(self, stats: FeatureStats | None = None, *, decay_s: float = DECAY_S, gate_dbfs: float = GATE_DBFS):
        self.stats = stats or FeatureStats.identity()
        self.alpha = 1.0 - float(np.exp(-HOP / SAMPLE_RATE / decay_s))
        self.gate_dbfs = gate_dbfs
        self._var_floor = VAR_FLOOR_RATIO * self.stats.var
        self.reset()

    def reset(self) -> None:
        self.mean = self.stats.mean.copy()
        self.var = self.stats.var.copy()
        self._inv_std = 1.0 / np.sqrt(np.maximum(self.var, self._var_floor))

    def apply(self, raw: np.ndarray, rms_db: np.ndarray) -> np.ndarray:
        """Normalise raw log-mel frames (n, N_MELS) in order, updating the state; returns float32 (n, N_MELS)."""
        out = np.empty(raw.shape, dtype=np.float64)
        a = self.alpha
        for i in range(len(raw)):
            x = raw[i]
            if rms_db[i] > self.gate_dbfs:
                d = x - self.mean
                self.mean = self.mean + a * d
                self.var = (1.0 - a) * (self.var + a * d * d)
                self._inv_std = 1.0 / np.sqrt(np.maximum(self.var, self._var_floor))
            out[i] = (x - self.mean) * self._inv_std
        np.clip(out, -CLIP, CLIP, out=out)
        return out.astype(np.float32)


class LogMelStream:
    """Push samples in any amounts; get every newly completed frame (normalised unless `normalize=False`).

    State: the last LOOKBACK + (pending) samples, the frame count and the normaliser.
    """

    def __init__(self, stats: FeatureStats | None = None, *, normalize: bool = True):
        self.normalize = normalize
        self.normalizer = StreamingNormalizer(stats)
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(LOOKBACK, dtype=np.float64)  # samples before 0 are zeros
        self.frames_done = 0
        self.samples_seen = 0
        self.normalizer.reset()

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Returns (k, N_MELS) float32: frames frames_done … frames_done + k − 1 (before this call's update)."""
        x = sanitize(samples)
        self.samples_seen += len(x)
        buf = np.concatenate([self._buf, x]) if len(x) else self._buf
        frames = frame_signal(buf)
        n = len(frames)
        if n == 0:
            self._buf = buf
            return np.zeros((0, N_MELS), dtype=np.float32)
        raw, rms_db = raw_log_mel(frames)
        self._buf = buf[n * HOP:].copy()
        self.frames_done += n
        if not self.normalize:
            return raw.astype(np.float32)
        return self.normalizer.apply(raw, rms_db)


def log_mel(audio: np.ndarray, stats: FeatureStats | None = None, *, normalize: bool = True) -> np.ndarray:
    """Offline: all len(audio) // 160 frames of a whole signal at once, (n, N_MELS) float32.

    Equal to one LogMelStream fed the same samples in any chunking.
    """
    x = sanitize(audio)
    raw, rms_db = raw_log_mel(frame_signal(np.concatenate([np.zeros(LOOKBACK), x])))
    if not normalize:
        return raw.astype(np.float32)
    return StreamingNormalizer(stats).apply(raw, rms_db)


def raw_log_mel_offline(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised float64 log-mel and window RMS (dBFS) of a whole signal: for computing `FeatureStats`."""
    x = sanitize(audio)
    return raw_log_mel(frame_signal(np.concatenate([np.zeros(LOOKBACK), x])))
