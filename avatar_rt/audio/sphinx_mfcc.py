"""PocketSphinx's MFCC front end for its en-US model, in numpy, streaming: what `avatar_rt.audio.phone_posteriors`
scores (the one implementation, shared by training and runtime; the model files are read by export.lipsync.sphinx_am).

    cep = CepstrumStream().push(pcm)         # (n, 13) cepstra for every newly completed 10 ms frame
    feat = deltas(StreamingCMN(CMN_PRIOR)(cep))   # (n, 39) [c, Δc, ΔΔc], the model's 1s_c_d_dd
    feat = features(audio, cmn="stream")     # the same, offline

Settings are the model's feat.params and PocketSphinx 5's defaults (fe_sigproc.c, fe_noise.c, feat.c), except
the cepstral mean: the model was trained with -cmn batch (the utterance's own mean), which a live session cannot
know; `StreamingCMN` follows the stream instead. Checked against PocketSphinx itself: its phone-loop decoder fed
these cepstra (`Decoder.process_cep`) segments a LibriVox utterance as it does from the raw audio (same phones,
99.86 % of frames on the first held-out LibriVox prompt; tests/test_sphinx_am.py checks another).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
HOP = 160  # 10 ms frames, as PocketSphinx (-frate 100)
WIN = 410  # -wlen 0.025625 s
N_FFT = 512
ALPHA = 0.97  # pre-emphasis
N_FILT, LOWER_HZ, UPPER_HZ = 25, 130.0, 6800.0  # feat.params
N_CEP = 13
LIFTER = 22
LOG_FLOOR = 1e-4  # fe_sigproc.c: log(mel power + 1e-4)
# 1s_c_d_dd: d[t] = c[t+2] − c[t−2], dd[t] = d[t+1] − d[t−1] = c[t+3] − c[t−1] − c[t+1] + c[t−3]:
# frame t's feature vector needs cepstra up to t+3.
LOOKAHEAD_FRAMES = 3
# Streaming CMN: a running mean whose weight starts as CMN_PRIOR_FRAMES of evidence for the prior (so the first
# words are not normalised by their own few frames) and settles into an exponential mean over CMN_WINDOW frames.
CMN_PRIOR_FRAMES = 100
CMN_WINDOW = 300


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_inv(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def sphinx_filterbank(warp: float = 1.0) -> np.ndarray:
    """(N_FFT//2 + 1, N_FILT): fe_build_melfilters with round_filters and unit_area (both defaults). `warp` ≠ 1 is a
    linear vocal-tract-length warp (an experiment, not PocketSphinx's default): the filter the model knows at f Hz
    reads the signal at warp · f (below Nyquist), so warp ≈ 1.15 makes a higher (female) voice's formants sit
    where a lower one's would."""
    step = SAMPLE_RATE / N_FFT
    lo, hi = _mel(LOWER_HZ), _mel(UPPER_HZ)
    bw = (hi - lo) / (N_FILT + 1)
    fb = np.zeros((N_FFT // 2 + 1, N_FILT))
    for i in range(N_FILT):
        f = np.minimum(_mel_inv(lo + bw * np.arange(i, i + 3)) * warp, SAMPLE_RATE / 2 - step * np.array([2, 1, 0]))
        f = np.floor(f / step + 0.5) * step  # round_filters
        for j in range(N_FFT // 2 + 1):
            hz = j * step
            if hz < f[0]:
                continue
            if hz > f[2] or j == N_FFT // 2:
                break
            up, down = (hz - f[0]) / (f[1] - f[0]), (f[2] - hz) / (f[2] - f[1])
            fb[j, i] = min(up, down) * 2.0 / (f[2] - f[0])
    return fb


def _dct_matrix() -> np.ndarray:
    """(N_FILT, N_CEP): -transform dct (unitary DCT-II), times the sin lifter (-lifter 22)."""
    j = np.arange(N_FILT) + 0.5
    m = np.cos(np.pi / N_FILT * np.outer(j, np.arange(N_CEP)))
    m[:, 0] *= np.sqrt(1.0 / N_FILT)
    m[:, 1:] *= np.sqrt(2.0 / N_FILT)
    lift = 1.0 + LIFTER / 2.0 * np.sin(np.arange(N_CEP) * np.pi / LIFTER)
    return m * lift


_HAMMING = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(WIN) / (WIN - 1))


class NoiseRemoval:
    """fe_noise.c (-remove_noise yes), float path: a causal per-filter noise floor and gain on the mel power."""

    def __init__(self, n: int = N_FILT):
        self.n = n
        self.power = self.noise = self.floor = self.peak = None
        idx = np.arange(n)
        lo, hi = np.maximum(idx - 4, 0), np.minimum(idx + 4, n - 1)
        self.smooth = ((idx[None, :] >= lo[:, None]) & (idx[None, :] <= hi[:, None])) / (hi - lo + 1)[:, None]

    @staticmethod
    def _envelope(buf, floor):
        return np.where(buf >= floor, 0.995 * floor + 0.005 * buf, 0.5 * floor + 0.5 * buf)

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """(n, N_FILT) mel power frames, oldest first → the same frames with the gain applied. The three
        recursions (noise, floor, peak) run frame by frame; the gain, which needs only their outputs, runs on all
        frames at once (the same arithmetic as frame by frame, so the same numbers)."""
        mel = np.asarray(mel, np.float64)
        if len(mel) == 0:
            return mel.copy()
        if self.power is None:
            self.power, self.noise, self.floor = mel[0].copy(), mel[0] / 20.0, mel[0] / 20.0
            self.peak = np.zeros(self.n)
        power, signal, floor = np.empty_like(mel), np.empty_like(mel), np.empty_like(mel)
        for t, m in enumerate(mel):
            self.power = 0.7 * self.power + 0.3 * m
            self.noise = self._envelope(self.power, self.noise)
            sig = np.maximum(self.power - self.noise, 1.0)
            self.floor = self._envelope(sig, self.floor)
            self.peak = self.peak * 0.85
            signal[t] = np.where(sig < 0.85 * self.peak, self.peak * 0.2, sig)
            self.peak = np.maximum(self.peak, sig)
            power[t], floor[t] = self.power, self.floor
        signal = np.maximum(signal, floor)
        gain = np.where(signal < 20.0 * power, signal / np.maximum(power, 1e-30), 20.0)
        gain = np.maximum(gain, 1.0 / 20.0)
        return mel * (gain @ self.smooth.T)


class CepstrumStream:
    """Streaming MFCC as PocketSphinx computes it for this model: pre-emphasis 0.97 over the whole stream, 410-sample
    Hamming frames every 160 samples (frame k = samples [160k, 160k + 410)), 512-point power spectrum, 25 mel
    filters 130–6800 Hz, noise removal, log(· + 1e-4), unitary DCT-II, lifter 22 → 13 cepstra."""

    def __init__(self, remove_noise: bool = True, warp: float = 1.0):
        self.fb = sphinx_filterbank(warp)
        self.dct = _dct_matrix()
        self.noise = NoiseRemoval() if remove_noise else None
        self.buf = np.zeros(0)
        self.prior = 0.0

    def push(self, pcm: np.ndarray) -> np.ndarray:
        # NaN → 0, anything beyond full scale clipped (as avatar_rt.audio.features): bad input stays finite
        x = np.clip(np.nan_to_num(np.asarray(pcm, np.float64).ravel()), -32768.0, 32767.0)
        if len(x) == 0:
            return np.zeros((0, N_CEP))
        emph = x - ALPHA * np.concatenate([[self.prior], x[:-1]])
        self.prior = x[-1]
        self.buf = np.concatenate([self.buf, emph])
        n = 0 if len(self.buf) < WIN else (len(self.buf) - WIN) // HOP + 1
        if n == 0:
            return np.zeros((0, N_CEP))
        idx = np.arange(n)[:, None] * HOP + np.arange(WIN)[None, :]
        frames = self.buf[idx] * _HAMMING
        self.buf = self.buf[n * HOP:]
        spec = np.abs(np.fft.rfft(frames, N_FFT)) ** 2
        mel = spec @ self.fb
        if self.noise is not None:
            mel = self.noise(mel)
        return np.log(mel + LOG_FLOOR) @ self.dct


class StreamingCMN:
    """Cepstral mean subtraction without the future: the mean starts at a prior and follows the stream."""

    def __init__(self, prior: np.ndarray):
        self.mean = np.asarray(prior, np.float64).copy()
        self.n = CMN_PRIOR_FRAMES

    def __call__(self, cep: np.ndarray) -> np.ndarray:
        out = np.empty_like(cep)
        for t, c in enumerate(cep):
            self.n = min(self.n + 1, CMN_WINDOW)
            self.mean += (c - self.mean) / self.n
            out[t] = c - self.mean
        return out


# The streaming CMN's start: the mean cepstrum of 80 of Allison's training prompts (a trained speaker of the lip-sync
# model, build/realspeech; never a held-out one). Per-utterance means spread by sd 1.9 in c0 around it.
CMN_PRIOR = np.array([57.40, 6.84, 10.47, 10.14, 1.52, 5.49, -4.36, 5.85, 2.03, 0.92, -2.08, -1.76, 2.71])


def delta_rows(p: np.ndarray) -> np.ndarray:
    """(n + 6, 13) normalised cepstra → (n, 39) [c, d, dd] for the n rows with 3 frames on either side."""
    n = len(p) - 6
    c = p[3:3 + n]
    d = p[5:5 + n] - p[1:1 + n]
    dd = (p[6:6 + n] - p[2:2 + n]) - (p[4:4 + n] - p[0:n])
    return np.concatenate([c, d, dd], axis=1)


def deltas(cep: np.ndarray) -> np.ndarray:
    """(T, 13) normalised cepstra → (T, 39) [c, d, dd] with the edges repeated (feat.c's 1s_c_d_dd)."""
    return delta_rows(np.concatenate([np.repeat(cep[:1], 3, 0), cep, np.repeat(cep[-1:], 3, 0)]))


def features(audio: np.ndarray, cmn: str = "stream", remove_noise: bool = True, warp: float = 1.0) -> np.ndarray:
    """Offline: the whole utterance → (T, 39). cmn: "stream" (what a live session can do) or "batch" (the utterance
    mean, PocketSphinx's -cmn batch for this model)."""
    cep = CepstrumStream(remove_noise, warp).push(audio)
    if cmn == "batch":
        cep = cep - cep.mean(axis=0, keepdims=True)
    else:
        cep = StreamingCMN(CMN_PRIOR)(cep)
    return deltas(cep)
