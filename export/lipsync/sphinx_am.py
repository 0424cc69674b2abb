"""PocketSphinx's bundled en-US acoustic model read with numpy: a streaming phone-posterior front end.

    model = load_model()                        # the PTM model inside the pocketsphinx package
    stream = PhonePosteriorStream(model)        # push 16 kHz int16, get one row per 10 ms frame
    rows = stream.push(pcm)                     # (n, 42) posteriors over model.phones
    post = phone_posteriors(model, audio)       # the same, offline (whole utterance, same numbers)

Feasibility study for issue 12; numbers: benchmarks/sphinx_am_bilabials.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

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
VAR_FLOOR = 1e-4  # -varfloor
LOGBASE = 1.0001  # -logbase; sendump holds -log_base(w) >> 10
SENSCR_SHIFT = 10
# 1s_c_d_dd: d[t] = c[t+2] − c[t−2], dd[t] = d[t+1] − d[t−1] = c[t+3] − c[t−1] − c[t+1] + c[t−3]:
# frame t's feature vector needs cepstra up to t+3.
LOOKAHEAD_FRAMES = 3
# Streaming CMN: a running mean whose weight starts as CMN_PRIOR_FRAMES of evidence for the prior (so the first
# words are not normalised by their own few frames) and settles into an exponential mean over CMN_WINDOW frames.
CMN_PRIOR_FRAMES = 100
CMN_WINDOW = 300
# Softmax temperature on the senone log-likelihoods (nats): neighbouring 10 ms frames are far from independent and
# the 39-dim Gaussians are sharp, so raw likelihood ratios make near one-hot posteriors. Set by the log-probability
# of the aligned phone on 80 of Allison's training prompts (32 678 frames): mean log P −2.95 at 0.1, −2.06 at 0.3,
# −1.77 at 0.5, −1.97 at 1.0.
DEFAULT_SCALE = 0.5



def default_model_dir() -> Path:
    import pocketsphinx  # only for the path of its bundled model

    return Path(pocketsphinx.get_model_path()) / "en-us" / "en-us"


# ------------------------------------------------------------------ model files


def _read_s3_header(buf: bytes) -> tuple[dict[str, str], int, str]:
    """Sphinx-3 binary header: "s3\\n", "name value" lines up to "endhdr\\n", then the int32 byte-order magic."""
    if not buf.startswith(b"s3\n"):
        raise ValueError("not a Sphinx-3 binary parameter file")
    end = buf.index(b"endhdr\n") + len(b"endhdr\n")
    args = {}
    for line in buf[3:end - len(b"endhdr\n")].decode("ascii").splitlines():
        parts = line.split(None, 1)
        if parts:
            args[parts[0]] = parts[1] if len(parts) > 1 else ""
    (magic,) = struct.unpack_from("<I", buf, end)
    if magic == 0x11223344:
        endian = "<"
    elif magic == 0x44332211:
        endian = ">"
    else:
        raise ValueError(f"bad byte-order magic {magic:#x}")
    return args, end + 4, endian


def read_gauden(path: Path) -> np.ndarray:
    """means / variances: (n_codebook, n_stream, n_density, veclen) float32 (streams of equal length only)."""
    buf = Path(path).read_bytes()
    _, off, e = _read_s3_header(buf)
    n_mgau, n_feat, n_density = struct.unpack_from(e + "3i", buf, off)
    off += 12
    veclen = struct.unpack_from(f"{e}{n_feat}i", buf, off)
    off += 4 * n_feat
    (n,) = struct.unpack_from(e + "i", buf, off)
    off += 4
    if len(set(veclen)) != 1 or n != n_mgau * n_density * sum(veclen):
        raise ValueError(f"{path}: unsupported shape {n_mgau}x{n_feat}x{n_density}, veclen {veclen}, {n} floats")
    data = np.frombuffer(buf, dtype=e + "f4", count=n, offset=off)
    return data.reshape(n_mgau, n_feat, n_density, veclen[0]).astype(np.float32)


def read_sendump(path: Path) -> np.ndarray:
    """Quantised mixture weights: (n_stream, n_density, n_senone) uint8 = −log_1.0001(w) >> 10 (ptm_mgau.c)."""
    buf = Path(path).read_bytes()
    (n,) = struct.unpack_from("<i", buf, 0)
    e = "<" if 1 <= n <= 999 else ">"
    off, header = 0, {}
    while True:  # length-prefixed strings (title, format description, "key value" lines) up to a 0 length
        (n,) = struct.unpack_from(e + "i", buf, off)
        off += 4
        if n == 0:
            break
        words = buf[off:off + n].rstrip(b"\0").decode("latin-1").split()
        if len(words) == 2 and words[1].isdigit():
            header[words[0]] = int(words[1])
        off += n
    if header.get("cluster_count", 0) != 0:
        raise ValueError(f"{path}: clustered (4-bit) mixture weights are not supported")
    n_feat = header.get("feature_count", 1)
    rows, cols = struct.unpack_from(e + "2i", buf, off)  # densities, senones
    off += 8
    return np.frombuffer(buf, np.uint8, n_feat * rows * cols, off).reshape(n_feat, rows, cols)


@dataclass(frozen=True)
class Mdef:
    """The parts of the binary model definition a CI scorer needs."""

    phones: tuple[str, ...]  # CI phone names (codebook i of a PTM model is phone i)
    n_ci_sen: int
    n_sen: int
    ci_senones: np.ndarray  # (n_ciphone, n_emit_state) senone ids of each CI phone's states


def read_mdef(path: Path) -> Mdef:
    """Binary "BMDF" model definition (bin_mdef.c): header, CI names, CD tree, phone table, senone sequences."""
    buf = Path(path).read_bytes()
    magic = buf[:4]
    if magic not in (b"BMDF", b"FDMB"):
        raise ValueError(f"{path}: not a binary mdef")
    e = "<" if magic == b"BMDF" else ">"
    _, skip = struct.unpack_from(e + "2i", buf, 4)
    off = 12 + skip
    (n_ciphone, n_phone, n_emit, n_ci_sen, n_sen, _n_tmat, n_sseq, _n_ctx, n_cd_tree,
     _sil) = struct.unpack_from(e + "10i", buf, off)
    off += 40
    names_start, names = off, []
    for _ in range(n_ciphone):
        end = buf.index(b"\0", off)
        names.append(buf[off:end].decode("ascii"))
        off = end + 1
    off = names_start + ((off - names_start + 3) & ~3)
    off += 8 * n_cd_tree  # (int16 ctx, int16 n_down, int32 child) per node
    phone = np.frombuffer(buf, np.dtype([("ssid", e + "i4"), ("tmat", e + "i4"), ("info", "u1", 4)]),
                          n_phone, off)
    off += 12 * n_phone
    (sseq_size,) = struct.unpack_from(e + "i", buf, off)
    off += 4
    if not n_emit or sseq_size != n_sseq * n_emit:
        raise ValueError(f"{path}: heterogeneous topologies are not supported")
    sseq = np.frombuffer(buf, e + "u2", sseq_size, off).reshape(n_sseq, n_emit)
    ci = sseq[phone["ssid"][:n_ciphone]].astype(np.int64)
    return Mdef(tuple(names), n_ci_sen, n_sen, ci)


@dataclass(frozen=True)
class SphinxModel:
    """The context-independent part of a PTM model, precomputed for scoring.

    Per stream f, the log density of Gaussian k of codebook c is
    `bias[f, c*K + k] + [x², x] · proj[f, :, c*K + k]` (the quadratic expanded, so one matrix product scores all
    42 × 128 Gaussians of a stream); a CI senone's stream score is logsumexp_k(log w + that), its score the sum
    over the 3 streams (exact mixtures, not PocketSphinx's top-4 approximation)."""

    phones: tuple[str, ...]
    senone_phone: np.ndarray  # (n_ci_sen,) CI phone index of each CI senone
    senone_codebook: np.ndarray  # (n_ci_sen,)
    proj: np.ndarray  # (n_stream, 2*veclen, n_codebook*n_density) float32
    bias: np.ndarray  # (n_stream, n_codebook*n_density) float32
    log_w: np.ndarray  # (n_stream, n_ci_sen, n_density) float32, natural log mixture weights
    n_density: int
    veclen: int

    @property
    def n_streams(self) -> int:
        return self.proj.shape[0]


def load_model(model_dir: Path | None = None) -> SphinxModel:
    d = Path(model_dir) if model_dir else default_model_dir()
    means, var = read_gauden(d / "means"), read_gauden(d / "variances")
    mdef = read_mdef(d / "mdef")
    mixw = read_sendump(d / "sendump")
    n_cb, n_feat, n_den, vl = means.shape
    if n_cb != len(mdef.phones):
        raise ValueError(f"{d}: {n_cb} codebooks for {len(mdef.phones)} CI phones: not a PTM model")
    if mixw.shape != (n_feat, n_den, mdef.n_sen):
        raise ValueError(f"{d}: sendump {mixw.shape} does not match the model ({n_feat}, {n_den}, {mdef.n_sen})")
    var = np.maximum(var.astype(np.float64), VAR_FLOOR)
    mu = means.astype(np.float64)
    iv2 = 1.0 / (2.0 * var)  # (c, f, k, d)
    det = np.sum(-0.5 * np.log(2.0 * np.pi * var), axis=-1)  # (c, f, k)
    bias = det - np.sum(mu * mu * iv2, axis=-1)
    proj = np.concatenate([-iv2, 2.0 * mu * iv2], axis=-1)  # (c, f, k, 2d)
    proj = proj.transpose(1, 3, 0, 2).reshape(n_feat, 2 * vl, n_cb * n_den)
    bias = bias.transpose(1, 0, 2).reshape(n_feat, n_cb * n_den)
    sen_phone = np.full(mdef.n_ci_sen, -1, np.int64)
    for p, states in enumerate(mdef.ci_senones):
        sen_phone[states] = p
    if np.any(sen_phone < 0):
        raise ValueError(f"{d}: a CI senone belongs to no CI phone")
    ci_w = mixw[:, :, :mdef.n_ci_sen].astype(np.float64)  # (f, k, s)
    log_w = -(ci_w * (1 << SENSCR_SHIFT)) * np.log(LOGBASE)
    return SphinxModel(mdef.phones, sen_phone, sen_phone.copy(), proj.astype(np.float32), bias.astype(np.float32),
                       log_w.transpose(0, 2, 1).astype(np.float32), n_den, vl)


# ------------------------------------------------------------------ front end


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_inv(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def sphinx_filterbank() -> np.ndarray:
    """(N_FFT//2 + 1, N_FILT): fe_build_melfilters with round_filters and unit_area (both defaults)."""
    step = SAMPLE_RATE / N_FFT
    lo, hi = _mel(LOWER_HZ), _mel(UPPER_HZ)
    bw = (hi - lo) / (N_FILT + 1)
    fb = np.zeros((N_FFT // 2 + 1, N_FILT))
    for i in range(N_FILT):
        f = _mel_inv(lo + bw * np.arange(i, i + 3))
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
        if self.power is None:
            self.power, self.noise, self.floor = mel.copy(), mel / 20.0, mel / 20.0
            self.peak = np.zeros(self.n)
        self.power = 0.7 * self.power + 0.3 * mel
        self.noise = self._envelope(self.power, self.noise)
        signal = np.maximum(self.power - self.noise, 1.0)
        self.floor = self._envelope(signal, self.floor)
        cur = signal.copy()
        self.peak = self.peak * 0.85
        signal = np.where(signal < 0.85 * self.peak, self.peak * 0.2, signal)
        self.peak = np.maximum(self.peak, cur)
        signal = np.maximum(signal, self.floor)
        gain = np.where(signal < 20.0 * self.power, signal / np.maximum(self.power, 1e-30), 20.0)
        gain = np.maximum(gain, 1.0 / 20.0)
        return mel * (self.smooth @ gain)


class CepstrumStream:
    """Streaming MFCC as PocketSphinx computes it for this model: pre-emphasis 0.97 over the whole stream, 410-sample
    Hamming frames every 160 samples (frame k = samples [160k, 160k + 410)), 512-point power spectrum, 25 mel
    filters 130–6800 Hz, noise removal, log(· + 1e-4), unitary DCT-II, lifter 22 → 13 cepstra."""

    def __init__(self, remove_noise: bool = True):
        self.fb = sphinx_filterbank()
        self.dct = _dct_matrix()
        self.noise = NoiseRemoval() if remove_noise else None
        self.buf = np.zeros(0)
        self.prior = 0.0

    def push(self, pcm: np.ndarray) -> np.ndarray:
        x = np.nan_to_num(np.asarray(pcm, np.float64).ravel(), posinf=32767, neginf=-32768)
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
            mel = np.stack([self.noise(m) for m in mel])
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


def deltas(cep: np.ndarray) -> np.ndarray:
    """(T, 13) normalised cepstra → (T, 39) [c, d, dd] with the edges repeated (feat.c's 1s_c_d_dd)."""
    p = np.concatenate([np.repeat(cep[:1], 3, 0), cep, np.repeat(cep[-1:], 3, 0)])
    c = p[3:-3]
    d = p[5:-1] - p[1:-5]
    dd = (p[6:] - p[2:-4]) - (p[4:-2] - p[:-6])
    return np.concatenate([c, d, dd], axis=1)


# ------------------------------------------------------------------ scoring


def senone_loglik(model: SphinxModel, feat: np.ndarray) -> np.ndarray:
    """(T, 39) features → (T, n_ci_sen) natural-log likelihoods of the CI senones."""
    feat = np.asarray(feat, np.float32)
    out = np.zeros((len(feat), len(model.senone_phone)), np.float32)
    cb = model.senone_codebook
    vl = model.veclen
    for f in range(model.n_streams):
        x = feat[:, f * vl:(f + 1) * vl]
        g = np.concatenate([x * x, x], axis=1) @ model.proj[f] + model.bias[f]  # (T, C*K)
        g = g.reshape(len(feat), -1, model.n_density)[:, cb, :] + model.log_w[f][None]  # (T, S, K)
        m = g.max(axis=2)
        out += m + np.log(np.exp(g - m[:, :, None]).sum(axis=2))
    return out


def posteriors_from_loglik(model: SphinxModel, ll: np.ndarray, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """Softmax over the senones (temperature 1/scale), summed per CI phone: (T, n_phones)."""
    z = scale * (ll - ll.max(axis=1, keepdims=True))
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    out = np.zeros((len(ll), len(model.phones)), np.float32)
    np.add.at(out.T, model.senone_phone, p.T)
    return out


def features(audio: np.ndarray, cmn: str = "stream", remove_noise: bool = True) -> np.ndarray:
    """Offline: the whole utterance → (T, 39). cmn: "stream" (what a live session can do) or "batch" (the utterance
    mean, PocketSphinx's -cmn batch for this model)."""
    cep = CepstrumStream(remove_noise).push(audio)
    if cmn == "batch":
        cep = cep - cep.mean(axis=0, keepdims=True)
    else:
        cep = StreamingCMN(CMN_PRIOR)(cep)
    return deltas(cep)


def phone_posteriors(model: SphinxModel, audio: np.ndarray, scale: float = DEFAULT_SCALE, cmn: str = "stream",
                     remove_noise: bool = True) -> np.ndarray:
    """(T, n_phones): row k is frame k (samples [160k, 160k + 410)); T = the number of whole windows."""
    return posteriors_from_loglik(model, senone_loglik(model, features(audio, cmn, remove_noise)), scale)


class PhonePosteriorStream:
    """Live form: push PCM, get the posterior rows that became final. Row k comes out once frame k + 3's window
    is complete (the delta-deltas look 3 frames ahead). Same numbers as `phone_posteriors(..., cmn="stream")`
    except at the very end of the stream (offline repeats the last frame for the missing lookahead)."""

    def __init__(self, model: SphinxModel, scale: float = DEFAULT_SCALE):
        self.model, self.scale = model, scale
        self.cep = CepstrumStream()
        self.cmn = StreamingCMN(CMN_PRIOR)
        self.hist = np.zeros((0, N_CEP))  # normalised cepstra, the last 6 + pending
        self.started = False

    def push(self, pcm: np.ndarray) -> np.ndarray:
        new = self.cmn(self.cep.push(pcm))
        if len(new) == 0:
            return np.zeros((0, len(self.model.phones)), np.float32)
        if not self.started:  # the stream's first frame is repeated 3 times before it, as offline
            self.hist = np.repeat(new[:1], 3, axis=0)
            self.started = True
        self.hist = np.concatenate([self.hist, new])
        n = len(self.hist) - 6  # rows with 3 frames either side
        if n <= 0:
            return np.zeros((0, len(self.model.phones)), np.float32)
        p = self.hist
        c = p[3:3 + n]
        d = p[5:5 + n] - p[1:1 + n]
        dd = (p[6:6 + n] - p[2:2 + n]) - (p[4:4 + n] - p[0:n])
        self.hist = self.hist[n:]
        feat = np.concatenate([c, d, dd], axis=1)
        return posteriors_from_loglik(self.model, senone_loglik(self.model, feat), self.scale)
