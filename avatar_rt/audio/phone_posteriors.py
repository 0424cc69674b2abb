"""Phone posteriors from PocketSphinx's en-US acoustic model, scored in numpy: the one implementation shared by
the lip sync's training (export/lipsync) and the runtime (avatar_rt.audio.phone_features).

    model = AcousticModel.load(engines_path)    # engines/phone_am.npz (export.lipsync.sphinx_am --export)
    stream = PhonePosteriorStream(model)        # push 16 kHz int16, get one row per 10 ms frame
    rows = stream.push(pcm)                     # (n, 42) posteriors over model.phones
    post = phone_posteriors(model, audio)       # the same, offline (whole utterance, same numbers)

Frame k is samples [160k, 160k + 410) through `avatar_rt.audio.sphinx_mfcc` (PocketSphinx's MFCC, a streaming
cepstral mean, 1s_c_d_dd deltas: row k needs frame k + 3, i.e. samples up to 160k + 890). Per frame the 126
context-independent senones (3 states of each of the 42 phones) are scored as exact 128-Gaussian mixtures per
stream from their phone's codebook (PocketSphinx uses its top 4), summed over the 3 streams; the posterior over the
phones is softmax(scale · log-likelihood) summed per phone (scale 0.5: export/lipsync/sphinx_am.py tells why).
The model's numbers are the BSD-style licensed en-US model of PocketSphinx 5 (Alpha Cephei; engines/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatar_rt.audio.sphinx_mfcc import CMN_PRIOR, N_CEP, CepstrumStream, StreamingCMN, delta_rows, features

# Softmax temperature on the senone log-likelihoods (nats); export/lipsync/sphinx_am.py has the measurement.
DEFAULT_SCALE = 0.5


@dataclass(frozen=True)
class AcousticModel:
    """The context-independent part of a PTM model, precomputed for scoring.

    Per stream f, the log density of Gaussian k of codebook c is `bias[f, c*K + k] + [x², x] · proj[f, :, c*K + k]`
    (the quadratic expanded, so one matrix product scores all 42 × 128 Gaussians of a stream); a CI senone's stream
    score is log Σ_k w_k · density_k over its phone's codebook, its score the sum over the 3 streams."""

    phones: tuple[str, ...]
    senone_phone: np.ndarray  # (n_ci_sen,) CI phone index (= codebook) of each CI senone
    proj: np.ndarray  # (n_stream, 2*veclen, n_codebook*n_density) float32
    bias: np.ndarray  # (n_stream, n_codebook*n_density) float32
    log_w: np.ndarray  # (n_stream, n_ci_sen, n_density) float32, natural log mixture weights
    # (n_stream, n_codebook, n_density, states): the weights in the layout `senone_loglik` sums with
    w_by_codebook: np.ndarray = field(init=False, repr=False, compare=False)
    # (n_stream, 2*veclen + 1, n_codebook*n_density): proj with bias as its last row ([x², x, 1] · proj_bias)
    proj_bias: np.ndarray = field(init=False, repr=False, compare=False)
    senone_to_phone: np.ndarray = field(init=False, repr=False, compare=False)  # (n_ci_sen, n_phones) one-hot

    def __post_init__(self):
        object.__setattr__(self, "senone_to_phone",
                           np.eye(len(self.phones), dtype=np.float32)[np.asarray(self.senone_phone)])
        object.__setattr__(self, "proj_bias", np.ascontiguousarray(
            np.concatenate([self.proj, self.bias[:, None, :]], axis=1), np.float32))
        order = self.senone_order
        w = np.exp(self.log_w[:, order, :]).reshape(self.n_streams, len(self.phones), -1, self.n_density)
        object.__setattr__(self, "w_by_codebook", np.ascontiguousarray(w.transpose(0, 1, 3, 2), np.float32))

    @property
    def n_streams(self) -> int:
        return self.proj.shape[0]

    @property
    def n_density(self) -> int:
        return self.log_w.shape[2]

    @property
    def veclen(self) -> int:
        return self.proj.shape[1] // 2

    def save(self, path: Path) -> None:
        np.savez(path, phones=np.array(self.phones), senone_phone=self.senone_phone, proj=self.proj, bias=self.bias,
                 log_w=self.log_w)

    @classmethod
    def load(cls, path: Path) -> AcousticModel:
        with np.load(path, allow_pickle=False) as z:
            return cls(tuple(str(p) for p in z["phones"]), z["senone_phone"].astype(np.int64),
                       z["proj"].astype(np.float32), z["bias"].astype(np.float32), z["log_w"].astype(np.float32))

    @property
    def senone_order(self) -> np.ndarray:
        """Senone ids grouped by codebook (each CI phone has the same number of states)."""
        return np.argsort(self.senone_phone, kind="stable")


CHUNK_FRAMES = 128  # frames scored at once: keeps the (frames, 5376) Gaussian scores in cache (3-5x faster than 6000)


def senone_loglik(model: AcousticModel, feat: np.ndarray) -> np.ndarray:
    """(T, 39) features → (T, n_ci_sen) natural-log likelihoods of the CI senones. Vectorised over frames: per
    stream one matrix product for all Gaussians, one exp per Gaussian (shared by the senones of its codebook: the
    max is taken over the codebook's densities, and a weight ≥ e^−26 keeps each sum far from 0 in float32), and
    a batched product with the weights; CHUNK_FRAMES at a time."""
    feat = np.asarray(feat, np.float32)
    ll = np.empty((len(feat), len(model.senone_phone)), np.float32)
    for i in range(0, len(feat), CHUNK_FRAMES):
        ll[i:i + CHUNK_FRAMES, model.senone_order] = _codebook_loglik(model, feat[i:i + CHUNK_FRAMES])
    return ll


def _codebook_loglik(model: AcousticModel, feat: np.ndarray) -> np.ndarray:
    """(T, 39) → (T, n_ci_sen) with the senones grouped by codebook (`senone_order`)."""
    T, vl, n_cb, K = len(feat), model.veclen, len(model.phones), model.n_density
    w = model.w_by_codebook  # (f, c, K, s)
    out = np.zeros((T, n_cb, w.shape[3]), np.float32)
    ones = np.ones((T, 1), np.float32)
    for f in range(model.n_streams):
        x = feat[:, f * vl:(f + 1) * vl]
        g = (np.concatenate([x * x, x, ones], axis=1) @ model.proj_bias[f]).reshape(T, n_cb, K)
        m = g.max(axis=2, keepdims=True)
        e = np.exp(g - m).transpose(1, 0, 2)  # (c, T, K)
        s = np.matmul(e, w[f]).transpose(1, 0, 2)  # (T, c, s)
        out += m + np.log(s)
    return out.reshape(T, -1)


def posteriors_from_loglik(model: AcousticModel, ll: np.ndarray, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """Softmax over the senones (temperature 1/scale), summed per CI phone: (T, n_phones)."""
    z = scale * (ll - ll.max(axis=1, keepdims=True))
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return (p @ model.senone_to_phone).astype(np.float32)


def phone_posteriors(model: AcousticModel, audio: np.ndarray, scale: float = DEFAULT_SCALE, cmn: str = "stream",
                     remove_noise: bool = True, warp: float = 1.0) -> np.ndarray:
    """(T, n_phones): row k is frame k (samples [160k, 160k + 410)); T = the number of whole windows."""
    return posteriors_from_loglik(model, senone_loglik(model, features(audio, cmn, remove_noise, warp)), scale)


class PhonePosteriorStream:
    """Live form: push PCM, get the posterior rows that became final. Row k comes out once frame k + 3's window
    is complete (the delta-deltas look 3 frames ahead). Same numbers as `phone_posteriors(..., cmn="stream")`
    except at the very end of the stream (offline repeats the last frame for the missing lookahead)."""

    def __init__(self, model: AcousticModel, scale: float = DEFAULT_SCALE, warp: float = 1.0):
        self.model, self.scale, self.warp = model, scale, warp
        self.reset()

    def reset(self) -> None:
        self.cep = CepstrumStream(warp=self.warp)
        self.cmn = StreamingCMN(CMN_PRIOR)
        self.hist = np.zeros((0, N_CEP))  # normalised cepstra, the last 6 + pending
        self.started = False

    def push(self, pcm: np.ndarray) -> np.ndarray:
        feat = self.push_features(pcm)
        if len(feat) == 0:
            return np.zeros((0, len(self.model.phones)), np.float32)
        return posteriors_from_loglik(self.model, senone_loglik(self.model, feat), self.scale)

    def push_features(self, pcm: np.ndarray) -> np.ndarray:
        """The (n, 39) feature rows that became final (what `push` scores); for callers that score only some rows
        (`posteriors(model, rows)`)."""
        new = self.cmn(self.cep.push(pcm))
        if len(new) == 0:
            return np.zeros((0, 3 * N_CEP), np.float32)
        if not self.started:  # the stream's first frame is repeated 3 times before it, as offline
            self.hist = np.repeat(new[:1], 3, axis=0)
            self.started = True
        self.hist = np.concatenate([self.hist, new])
        n = len(self.hist) - 6  # rows with 3 frames either side
        if n <= 0:
            return np.zeros((0, 3 * N_CEP), np.float32)
        feat = delta_rows(self.hist)
        self.hist = self.hist[n:]
        return np.asarray(feat, np.float32)
