"""PocketSphinx's bundled en-US acoustic model read with numpy: a streaming phone-posterior front end.

    model = load_model()                        # the PTM model inside the pocketsphinx package
    stream = PhonePosteriorStream(model)        # push 16 kHz int16, get one row per 10 ms frame
    rows = stream.push(pcm)                     # (n, 42) posteriors over model.phones
    post = phone_posteriors(model, audio)       # the same, offline (whole utterance, same numbers)

A feasibility study for issue 12 ("a representation learned from real human speech"): can the one acoustic model
trained on many real speakers that we have offline, PocketSphinx 5's en-US PTM model (BSD-style licence, Alpha
Cephei; its README beside the files), hear the p/b/m that stage A misses on real voices? Not used by the shipped
model. Numbers: `OMP_NUM_THREADS=1 nice -n 10 python benchmarks/sphinx_am_bilabials.py` (2-core AMD EPYC VM,
2026-11-29, shared with a training run and other jobs: load 3 to 18).

## What it computes
* The model files, parsed with numpy (formats read from PocketSphinx's ms_gauden.c, ptm_mgau.c, bin_mdef.c):
  `means`/`variances` (42 codebooks × 3 streams × 128 Gaussians × 13; 208 zero variances floored at 1e-4 as
  -varfloor does), `sendump` (uint8 (3, 128, 5126) = −log₁.₀₀₀₁(w) >> 10) and the binary `mdef` (42 CI phones,
  126 CI senones = 3 states each, 5126 senones).
* `sphinx_mfcc`: PocketSphinx's front end for this model (pre-emphasis, 410-sample Hamming, 25 filters
  130–6800 Hz, its noise removal, DCT, lifter 22), a streaming cepstral mean instead of -cmn batch, and
  1s_c_d_dd deltas. Lookahead: 3 frames (ΔΔ needs c[t+3]); frame k is samples [160k, 160k + 410), so hop k's
  row needs samples up to 160k + 890: **45.6 ms** past the end of hop k. Inside stage A's 80 ms right context
  that adds no latency if stage A reads the posterior row of hop t − 5 beside mel frame t (it then sees 3 hops
  past the hop it predicts).
* Scores: the 126 CI senones, each an exact 128-Gaussian mixture per stream (PocketSphinx uses its top 4) from
  its phone's codebook, multiplied over the 3 streams; posterior over the 42 phones (incl. SIL, +NSN+, +SPN+)
  = softmax(0.5 · log-likelihoods) summed per phone. `PhonePosteriorStream` gives the offline numbers (2e-6).

## Checked against PocketSphinx
* Front end: PocketSphinx's phone-loop (allphone) decoder fed these cepstra (`process_cep`) decodes the same
  58 phones as from the raw audio, on 99.86 % of the frames (first LibriVox prompt; the test checks another).
* Scorer (frame-wise argmax of the posteriors, no HMM, streaming CMN), speech frames: = PocketSphinx's forced
  alignment on 45.7 % (LibriVox, m), 35.3 % (Warzone narrator, f), 48.7 / 48.5 % (flite awb / rms, exact
  synthesizer times); = PocketSphinx's own allphone decoding on 45.0 / 36.3 / 46.2 / 48.0 %. A CI GMM frame by
  frame is that noisy; the p/b/m sum below is what matters.

## Does it hear p/b/m where stage A does not?
Per closure the peak of P(P)+P(B)+P(M) within ±40 ms; negatives: speech frames > 80 ms from any p/b/m. Recall
at the threshold leaving ≤ 2 % of those frames above it (AUC in brackets); `@10ms` per hop, `@25fps` the hop at
each video frame's centre (what the runtime shows of stage A), `lip_press` the shipped stage A at 25 fps:

| voice (p/b/m) | sphinx @10ms | sphinx @25fps | sphinx @25fps, mean of 4 hops | stage A lip_press | lip_press ≥ 0.5 |
|---|---|---|---|---|---|
| real LibriVox, m (29) | 89.7 % (0.995) | 72.4 % (0.985) | 82.8 % (0.990) | 65.5 % (0.974) | 44.8 % |
| real Warzone narrator, f (228) | 62.7 % (0.971) | 34.2 % (0.936) | 43.4 % (0.944) | 49.6 % (0.949) | 49.6 % |
| flite awb, m (101) | 99.0 % (0.998) | 92.1 % (0.993) | 98.0 % (0.997) | 71.3 % (0.973) | 61.4 % |
| flite rms, m (101) | 100 % (0.999) | 95.0 % (0.996) | 98.0 % (0.997) | 70.3 % (0.972) | 72.3 % |

More voices (`--voices ...`, same columns less the mean-of-4; which of them stage A trained on is the point):

| voice (p/b/m) | stage A trained on it? | sphinx @10ms | sphinx @25fps | stage A lip_press |
|---|---|---|---|---|
| real Allison, f, held-out prompts (164) | the speaker | 82.9 % (0.991) | 62.8 % (0.973) | 92.7 % (0.996) |
| Festival kal diphone, m (101) | yes | 99.0 % (0.995) | 79.2 % (0.983) | 99.0 % (0.999) |
| espeak en+f2, f (101) | yes | 77.2 % (0.981) | 50.5 % (0.931) | 100 % (1.000) |
| espeak en-us-nyc+Annie, f (101) | no | 52.5 % (0.956) | 16.8 % (0.838) | 100 % (0.999) |
| Festival lp diphone, f (137) | no | 57.7 % (0.958) | 32.1 % (0.925) | 45.3 % (0.956) |
| Festival suo_fi_lj diphone, f, Finnish (107) | no | 87.9 % (0.993) | 62.6 % (0.960) | 64.5 % (0.979) |
| Festival upc_ca_ona HTS, f, Catalan (134) | no | 53.7 % (0.963) | 49.3 % (0.943) | 93.3 % (0.991) |

So the acoustic model hears p/b/m in male voices nearly perfectly whoever made them (89.7–100 % at 10 ms, also
where stage A gets 65–71 %), but in female voices only 52–88 % — where stage A, trained on espeak's female
variants, is often better. The two fail in different places. At the 25 fps sampling the posterior loses much
(its p/b/m evidence is a 1–3 hop spike): as a feature stage A would read it at 100 Hz, so the 10 ms column is
what the information is worth; the 25 fps columns say it is no drop-in `lip_press`.

Caveats: the real speakers' phone times come from PocketSphinx's own aligner (its triphone senones), so on them
this detector is judged against labels of its own kind; the flite rows have exact times and say the same thing.
The Warzone narrator is hard for it too (frame agreement 35 %). From ad-hoc loops over this module and the
benchmark's helpers (not committed): not her 11 kHz band — LibriVox sent through
11 025 Hz and back scores 93.1 % @10ms (wideband 89.7 %) — but her voice or recording. Batch CMN (not live)
would raise her @10ms recall to 71.5 %; the streaming CMN's settings (prior weight 20–100 frames, window
100–300) move it by ≤ 3 points.

## Cost
PhonePosteriorStream, one 10 ms push, one thread: median 0.198 ms (front end 0.046 ms) at load 3; 0.222 / 0.203 ms (front end
0.054 / 0.049 ms) in the two later runs at load 14–18 (their p99, 44–51 ms, is the scheduler, not the code).

## A female-voice follow-up: vocal-tract-length warping
`sphinx_mfcc.sphinx_filterbank(warp)` reads the filter the model knows at f Hz at warp · f. On the first 40
utterances per voice (an ad-hoc loop over this module and the benchmark's helpers, not committed), recall @10ms
at warp 1.0 → 1.15: Allison 75.7 → 85.7 %, Festival lp 57.7 → 56.2 % (AUC 0.958 → 0.967), Warzone narrator
75.0 → 69.2 %, LibriVox 89.7 → 82.8 %, flite rms 100 → 90.1 %. One warp for everyone does not help; but in every
one of these voices the warp with the higher mean best-senone log-likelihood (Allison −153.8 → −152.9, lp −152.5
→ −152.1; Warzone −151.0 → −157.1, LibriVox −150.6 → −151.6, rms −149.1 → −151.1) is the one with the better
recall, so a per-stream warp chosen by likelihood (PocketSphinx's VTLN idea, run live over a few candidates) is
the next thing to try for female voices.

## Recommendation
Use it as **extra input features to stage A** — not as a replacement for the mel path, and not as a drop-in
`lip_press`:
* what: the 42 log phone posteriors (log of the scale-0.5 softmax, floored at ~1e-4, normalised with fixed global
  statistics) beside the 80 log-mels; 42 rather than 126 state log-likelihoods (the states add dimensions, not lip
  information, and the softmax already normalises each frame); they carry rounding, open vowels and labiodentals
  too, not only p/b/m;
* when: the row of hop t − 5 beside mel frame t, so the 80 ms lookahead stays;
* cost: ~0.2 ms a frame in numpy, inside the issue's 1.5 ms for a stage A with a new front end; computing it for
  the training audio (with its augmentation) is ~0.2 ms per 10 ms, minutes per epoch of our data;
* why: on male voices built from real recordings (LibriVox, flite awb/rms) it hears 90–100 % of p/b/m at 10 ms
  where stage A gets 65–71 %; on female voices it is weak (52–88 %) where stage A is often strong, so the two
  are complementary and stage A learns when to trust which. On the worst held-out speaker (the Warzone narrator)
  it is better than stage A only at 10 ms resolution (62.7 vs 49.6 %): with it alone the issue's 90 % is out
  of reach.
As a training-time teacher only (stage A predicting the posteriors from the mels) it costs nothing at run time,
but the mel path is what fails to generalise and there is little extra real audio to distil on: second choice.
Shipping it means exporting proj/bias/log_w (~2 MB float32) into engines/ with the model's licence notice;
avatar_rt would run `sphinx_mfcc` and the scorer in numpy (or the scorer as an ONNX matmul + logsumexp), with no
pocketsphinx import at run time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.lipsync.sphinx_mfcc import CMN_PRIOR, N_CEP, CepstrumStream, StreamingCMN, features

VAR_FLOOR = 1e-4  # -varfloor
LOGBASE = 1.0001  # -logbase; sendump holds -log_base(w) >> 10
SENSCR_SHIFT = 10

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


def phone_posteriors(model: SphinxModel, audio: np.ndarray, scale: float = DEFAULT_SCALE, cmn: str = "stream",
                     remove_noise: bool = True, warp: float = 1.0) -> np.ndarray:
    """(T, n_phones): row k is frame k (samples [160k, 160k + 410)); T = the number of whole windows."""
    return posteriors_from_loglik(model, senone_loglik(model, features(audio, cmn, remove_noise, warp)), scale)


class PhonePosteriorStream:
    """Live form: push PCM, get the posterior rows that became final. Row k comes out once frame k + 3's window
    is complete (the delta-deltas look 3 frames ahead). Same numbers as `phone_posteriors(..., cmn="stream")`
    except at the very end of the stream (offline repeats the last frame for the missing lookahead)."""

    def __init__(self, model: SphinxModel, scale: float = DEFAULT_SCALE, warp: float = 1.0):
        self.model, self.scale = model, scale
        self.cep = CepstrumStream(warp=warp)
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
