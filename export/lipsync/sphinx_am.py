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

# The scorer and its streaming form live in the runtime (one implementation for training and runtime); they are
# re-exported here for the study's benchmark and tests.
from avatar_rt.audio.phone_posteriors import (DEFAULT_SCALE, AcousticModel, PhonePosteriorStream,  # noqa: F401
                                              phone_posteriors, posteriors_from_loglik, senone_loglik)

VAR_FLOOR = 1e-4  # -varfloor
LOGBASE = 1.0001  # -logbase; sendump holds -log_base(w) >> 10
SENSCR_SHIFT = 10

# Softmax temperature: DEFAULT_SCALE = 0.5 on the senone log-likelihoods (nats): neighbouring 10 ms frames are far
# from independent and the 39-dim Gaussians are sharp, so raw likelihood ratios make near one-hot posteriors. Set by
# the log-probability of the aligned phone on 80 of Allison's training prompts (32 678 frames): mean log P −2.95 at
# 0.1, −2.06 at 0.3, −1.77 at 0.5, −1.97 at 1.0.


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


SphinxModel = AcousticModel  # the study's name


def load_model(model_dir: Path | None = None) -> AcousticModel:
    """The CI part of the PTM model in `model_dir` (default: the one inside the pocketsphinx package)."""
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
    return AcousticModel(mdef.phones, sen_phone, proj.astype(np.float32), bias.astype(np.float32),
                         log_w.transpose(0, 2, 1).astype(np.float32))


# ------------------------------------------------------------------ shipping it to the runtime

ENGINE_VERSION = "1.0.0"
LICENCE_NAME = "phone_am.LICENSE.txt"


def export_engine(out_dir: Path, model_dir: Path | None = None, write_manifest: bool = True) -> Path:
    """Write OUT/phone_am.npz (the CI part of the model, as `avatar_rt.audio.phone_posteriors.AcousticModel`
    loads it, float32, ~2 MB), the model's licence notice beside it, and its manifest entry. Deterministic: the
    same pocketsphinx package gives the same bytes, so the sha256 in a stage A model's metadata stays valid."""
    from avatar_rt.audio.phone_features import ENGINE_NAME  # noqa: PLC0415
    from export import manifest  # noqa: PLC0415

    d = Path(model_dir) if model_dir else default_model_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{ENGINE_NAME}.npz"
    load_model(d).save(path)
    readme = (d / "README").read_text(errors="replace")
    (out_dir / LICENCE_NAME).write_text(
        f"{path.name} holds numbers derived from the en-US acoustic model of PocketSphinx 5.1.1 (means, variances "
        "and mixture weights of its 126 context-independent senones; export/lipsync/sphinx_am.py). The model's "
        "licence, from its README:\n\n" + readme.split("*/")[0] + "*/\n")
    if write_manifest:
        desc = ("PocketSphinx en-US PTM acoustic model, context-independent part (42 phones, 126 senones, 3 streams "
                "× 128 Gaussians × 13): scored in numpy by avatar_rt.audio.phone_posteriors for stage A's `phones` "
                f"input; BSD-style licence (Alpha Cephei) in {LICENCE_NAME}")
        meta = {"format": "npz: phones, senone_phone, proj, bias, log_w", "licence": LICENCE_NAME,
                "source": "pocketsphinx==5.1.1 model/en-us/en-us"}
        manifest.update(manifest.file_entry(path, ENGINE_NAME, ENGINE_VERSION, desc, meta),
                        out_dir / manifest.MANIFEST.name)
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    ap = argparse.ArgumentParser(prog="python -m export.lipsync.sphinx_am",
                                 description="export the acoustic model's CI part for avatar_rt (engines/phone_am.npz)")
    ap.add_argument("--export", type=Path, required=True, metavar="ENGINES_DIR")
    path = export_engine(ap.parse_args(argv).export)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and its manifest entry")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
