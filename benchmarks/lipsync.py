"""Lip-sync quality and cost: the runtime model on held-out speech, and the rendered video.

    python benchmarks/lipsync.py [--engines DIR] [--data DIR] [--utterances 1000] [--render 24]
                                 [--fps 25] [--seed 7] [--json out.json]

Everything runs the *runtime* (`avatar_rt.motion.lipsync.LipSyncModel`, the ONNX
model in `engines/` or `--engines DIR`), streamed exactly as `FramePipeline`
drives it: per video frame m the slice `frame_bounds(m, fps)` of the timeline,
the pipeline's VAD (`SpeechDetector`) on it, then `model.step(slice, speech)`;
step m returns frame n = m − lookahead_frames. Each utterance starts a fresh
model and VAD, and is followed by silence until its last frame has come out.

Held-out speech: `--data DIR` takes that dataset's `heldout` split
(`export.lipsync.data` format); without it, `--utterances` held-out utterances
are synthesized into a temporary directory by `export.lipsync.data`'s own
planner and writer (espeak voices/variants and sentences reserved for
held-out evaluation, never for training), with `--seed` choosing them; the
set for N utterances is a prefix of the set for N + 1.

Metrics, per video frame n, against the dataset's targets at hop h(n) (the
10 ms hop holding the frame's centre, `hop_for_frame`):

* 15-viseme accuracy: argmax of the model's viseme posteriors (after the
  runtime's VAD gate) vs the viseme label; 6-group accuracy: the same, mapped
  to `phonemes.GROUPS`.
* bilabial closures: a closure is a run of contiguous P/B/M segments
  (exact synthesizer times). It is detected when, in at least one frame whose
  display interval [n/fps, (n+1)/fps) overlaps it, the returned lip_press is
  ≥ 0.5 or PP is the argmax viseme. Onset error: (centre time of the first
  detecting frame − closure start), ms; the median and p90 of its absolute
  value are reported (and the signed median: > 0 late, < 0 early). At 25 fps
  frame centres are 40 ms apart, so even the targets themselves (the
  "targets" row) have onset errors up to ±20 ms.
* jaw-open correlation (judged): Pearson between the returned jaw_open and the
  target's, taken per utterance — one predicted trajectory against its one target
  trajectory — and averaged over utterances (median and 10th percentile beside it).
  Each utterance's target is drawn with its own speaker style (jaw range 0.6–1.27×,
  lead, smoothing, jitter: `coarticulation.STYLE_RANGES`) that the audio does not
  carry by construction; the range factor is what the engine's lip-scale control
  sets, not something to read from speech. A per-utterance r is blind to that factor.
  Also printed, for scale: the same Pearson pooled over all frames of all utterances
  (which counts each utterance's random jaw range against the model), the model
  pooled against each utterance's *mean-style* trajectory (`coarticulation.mean_style`:
  the middle of every style range, no jitter) — its error without the style draw —
  and that mean-style trajectory against the sampled targets: what a perfect
  deterministic model would score pooled (0.928 on the default set). Sessions 2–4
  judged the pooled number; docs/lipsync.md (Status) says why it changed.
* baselines: the loudness jaw (`LoudnessJawModel`, the old stand-in) through
  the same driver (jaw correlation only: it has no visemes and no lip press),
  the most frequent viseme (accuracy floor) and the targets themselves
  sampled at the frames (the best any frame-rate output can do on closures).

Rendered video: the whole `FramePipeline` (model → idle → rig → renderer) runs
offline on the first `--render` utterances; MediaPipe Face Mesh re-detects
the mouth on every rendered frame (inner-lip gap, landmarks 13 ↔ 14, pixels).
The audio envelope is the RMS of the audio slice each OutputFrame carries
(the audio the pipeline pairs with that image). Both series, at the frames'
centre times, are linearly interpolated to 100 Hz and cross-correlated over
±200 ms in 10 ms steps (Pearson per lag, averaged over utterances weighted by
overlap). SIGN CONVENTION: `video_lead_ms` = d maximising
corr(mouth(t), envelope(t + d)); d > 0 means the mouth opens *before* the
sound gets loud (video leads, audio lags the mouth), d < 0 means the video
lags the audio. Target: −20 ≤ d ≤ +60 ms (video may lead; it may lag by at
most 20 ms). The same lag is also reported for the commanded jaw_open (before
rig and renderer) and for the dataset's target jaw (what a perfect model would
give), to locate any offset. The verdict uses the 10 ms grid value; a
parabola through the peak and a 90 % interval from resampling utterances are
printed beside it, for information.

Verdicts: the issue's targets; the bilabial one needs recall ≥ 95 % and the
median |onset error| ≤ 40 ms (p90 printed beside it).

Cost: `LipSyncModel.step` (features + ONNX model + gate) per video frame, one
thread, median and p99, measured during the accuracy pass (the first
utterance is warm-up). The machine's load average is printed with it.

Teacher/student: stage B entries (`lipsync_stage_b*` in the manifest) are
listed side by side (teacher, 2-step student, ratio); until stage B is built
this prints "stage B not built yet".

Exit status: 0 when it ran (targets pass or not; see the table and the JSON's
`targets`), 2 when there is no lip-sync model to evaluate.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # not when a test imports this: the variables would leak into its subprocesses
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")  # one thread: the budget is per core, and others share this machine

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `export` is not an installed package

from avatar_rt.motion.lipsync import ARTICULATION, ENGINE_NAME, hop_for_frame  # noqa: E402
from avatar_rt.motion.loudness_jaw import LoudnessJawModel  # noqa: E402
from avatar_rt.pipeline import frame_bounds  # noqa: E402
from export.lipsync import coarticulation as co  # noqa: E402
from export.lipsync import phonemes as ph  # noqa: E402

VISEMES = ph.VISEMES
GROUP_OF = np.array(ph.VISEME_GROUP_INDEX)
PP = VISEMES.index("PP")
BILABIALS = frozenset(p for p, v in ph.ARPABET_TO_VISEME.items() if v == "PP")  # P B M
LIP_PRESS_DETECT = 0.5
LAG_RANGE_MS = 200
LAG_STEP_MS = 10
STAGE_B_PREFIX = "lipsync_stage_b"

# The targets, checked by `judge`.
TARGETS = {
    "viseme_acc": "15-viseme frame accuracy ≥ 70 %",
    "group_acc": "6-group frame accuracy ≥ 85 %",
    "bilabial": "bilabial closure recall ≥ 95 % with median onset error ≤ 40 ms",
    "jaw_corr": "jaw-open correlation ≥ 0.85 (per utterance, mean)",
    "video_lead": "rendered video lead in [−20, +60] ms",
    "cost": "≤ 1 ms per video frame (median, one thread; ≤ 1.5 ms with the phone-posterior front end)",
    "stage_b": "2-step student within 10 % of the teacher (lip rows), ≥ 10× faster",
}


# --------------------------------------------------------------------------- metric functions (pure numpy)


def frame_hops(n_frames: int, fps: float) -> np.ndarray:
    """h(n) for frames 0 … n_frames − 1: the hop holding each frame's centre."""
    return np.array([hop_for_frame(n, fps) for n in range(n_frames)], dtype=np.int64)


def frames_in(n_hops: int, fps: float) -> int:
    """How many video frames have their centre hop inside an utterance of `n_hops` target hops."""
    n = int(n_hops * fps / 100) + 2
    while n > 0 and hop_for_frame(n - 1, fps) >= n_hops:
        n -= 1
    return n


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def viseme_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """15-viseme and 6-group accuracy of per-frame viseme indices."""
    pred, true = np.asarray(pred, np.int64), np.asarray(true, np.int64)
    if len(true) == 0:
        return {"viseme_acc": None, "group_acc": None, "frames": 0}
    return {"viseme_acc": float(np.mean(pred == true)), "group_acc": float(np.mean(GROUP_OF[pred] == GROUP_OF[true])),
            "frames": int(len(true))}


def top_confusions(pred: np.ndarray, true: np.ndarray, k: int = 6) -> list[dict]:
    """The k most frequent (label → prediction) errors, as shares of all frames."""
    m = np.zeros((len(VISEMES), len(VISEMES)), np.int64)
    np.add.at(m, (np.asarray(true, np.int64), np.asarray(pred, np.int64)), 1)
    np.fill_diagonal(m, 0)
    order = np.argsort(m, axis=None)[::-1][:k]
    total = max(1, len(true))
    return [{"label": VISEMES[i // len(VISEMES)], "predicted": VISEMES[i % len(VISEMES)],
             "share": float(m.flat[i] / total)} for i in order if m.flat[i] > 0]


def runs(phonemes, starts, ends, members) -> list[tuple[float, float]]:
    """Contiguous runs of segments whose phoneme is in `members`, as (start s, end s)."""
    out: list[tuple[float, float]] = []
    for p, s, e in zip(phonemes, starts, ends):
        if str(p) not in members:
            continue
        if out and abs(out[-1][1] - float(s)) < 1e-6:
            out[-1] = (out[-1][0], float(e))
        else:
            out.append((float(s), float(e)))
    return out


def closure_segments(phonemes, starts, ends) -> list[tuple[float, float]]:
    """Bilabial closures: runs of contiguous P/B/M segments, (start s, end s)."""
    return runs(phonemes, starts, ends, BILABIALS)


def closure_onsets(segments: list[tuple[float, float]], detected: np.ndarray, fps: float) -> list[float | None]:
    """Per closure: onset error in ms (centre of the first detecting frame − closure start), None if missed.

    `detected[n]` says whether frame n shows a closure; a closure's frames are those whose display interval
    [n/fps, (n+1)/fps) overlaps it.
    """
    out: list[float | None] = []
    for s, e in segments:
        # 1e-3 frame (40 µs at 25 fps) of slack: float32 segment times must not reach into a neighbouring frame.
        first, last = int(np.floor(s * fps + 1e-3)), int(np.ceil(e * fps - 1e-3)) - 1
        first, last = max(first, 0), min(last, len(detected) - 1)
        hit = next((n for n in range(first, last + 1) if detected[n]), None)
        out.append(None if hit is None else 1000.0 * ((hit + 0.5) / fps - s))
    return out


def closure_metrics(onsets: list[float | None]) -> dict:
    found = np.array([o for o in onsets if o is not None], np.float64)
    n = len(onsets)
    return {
        "closures": n,
        "detected": int(len(found)),
        "recall": float(len(found) / n) if n else None,
        "onset_abs_median_ms": float(np.median(np.abs(found))) if len(found) else None,
        "onset_abs_p90_ms": float(np.percentile(np.abs(found), 90)) if len(found) else None,
        "onset_signed_median_ms": float(np.median(found)) if len(found) else None,
    }


def to_100hz(values: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame values (at the frames' centre times (n + ½)/fps) → linear interpolation on a 10 ms grid."""
    values = np.asarray(values, np.float64)
    t = (np.arange(len(values)) + 0.5) / fps
    grid = np.arange(np.ceil(t[0] * 100), np.floor(t[-1] * 100) + 1) / 100
    return np.interp(grid, t, values)


def lag_curve(envelope: np.ndarray, mouth: np.ndarray, fps: float, max_ms: int = LAG_RANGE_MS,
              step_ms: int = LAG_STEP_MS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson correlation of mouth(t) with envelope(t + d) for d in −max_ms … +max_ms (video-lead convention).

    Both inputs are per video frame; returns (d in ms, correlation per d (NaN where undefined), overlap samples).
    """
    assert step_ms == 10, "the 100 Hz grid gives 10 ms steps"
    env, mouth = to_100hz(envelope, fps), to_100hz(mouth, fps)
    shifts = np.arange(-max_ms // step_ms, max_ms // step_ms + 1)
    corr = np.full(len(shifts), np.nan)
    weight = np.zeros(len(shifts))
    n = len(env)
    for i, s in enumerate(shifts):
        lo, hi = max(0, -s), min(n, n - s)  # mouth[j] pairs with env[j + s]
        if hi - lo < 3:
            continue
        c = pearson(mouth[lo:hi], env[lo + s:hi + s])
        if c is not None:
            corr[i], weight[i] = c, hi - lo
    return shifts * step_ms, corr, weight


def _pool(curves: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    num, den = np.zeros(len(curves[0][0])), np.zeros(len(curves[0][0]))
    for _, c, w in curves:
        ok = np.isfinite(c)
        num[ok] += c[ok] * w[ok]
        den[ok] += w[ok]
    return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)


def _refined_peak(lags: np.ndarray, curve: np.ndarray) -> float | None:
    """The peak of a parabola through the grid maximum and its neighbours (sub-10 ms, for information)."""
    if not np.isfinite(curve).any():
        return None
    k = int(np.nanargmax(curve))
    if k == 0 or k == len(curve) - 1 or not np.all(np.isfinite(curve[k - 1:k + 2])):
        return float(lags[k])
    a, b, c = curve[k - 1:k + 2]
    den = a - 2 * b + c
    off = 0.0 if abs(den) < 1e-12 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return float(lags[k] + off * (lags[1] - lags[0]))


def pooled_lead(curves: list[tuple[np.ndarray, np.ndarray, np.ndarray]], bootstrap: int = 300) -> dict:
    """Overlap-weighted mean of per-utterance lag curves; the lead at its peak (10 ms grid), the parabola-refined
    peak, and a 90 % interval of the refined peak from resampling the utterances."""
    if not curves:
        return {"video_lead_ms": None, "peak_corr": None, "per_utterance_ms": []}
    lags = curves[0][0]
    per = [int(lags[np.nanargmax(c)]) for _, c, _ in curves if np.isfinite(c).any()]
    mean = _pool(curves)
    if not np.isfinite(mean).any():
        return {"video_lead_ms": None, "peak_corr": None, "per_utterance_ms": per}
    k = int(np.nanargmax(mean))
    rng = np.random.default_rng(0)
    boot = [_refined_peak(lags, _pool([curves[i] for i in rng.integers(0, len(curves), len(curves))]))
            for _ in range(bootstrap if len(curves) > 1 else 0)]
    boot = [b for b in boot if b is not None]
    return {"video_lead_ms": int(lags[k]), "peak_corr": float(mean[k]),
            "refined_ms": _refined_peak(lags, mean),
            "ci90_ms": [float(np.percentile(boot, 5)), float(np.percentile(boot, 95))] if boot else None,
            "peak_at_search_edge": k in (0, len(lags) - 1), "per_utterance_ms": per,
            "curve": {int(d): (None if not np.isfinite(v) else round(float(v), 4)) for d, v in zip(lags, mean)}}


def rms(audio: np.ndarray) -> float:
    x = np.asarray(audio, np.float64) / 32768.0
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


def percentiles_ms(seconds: list[float] | np.ndarray) -> dict:
    a = np.asarray(seconds, np.float64) * 1000.0
    if len(a) == 0:
        return {"median_ms": None, "p99_ms": None, "frames": 0}
    return {"median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "frames": int(len(a))}


# --------------------------------------------------------------------------- held-out data


@dataclass
class Utterance:
    id: str
    voice: str
    text: str
    audio: np.ndarray
    phonemes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    visemes: np.ndarray
    articulation: np.ndarray

    @staticmethod
    def load(path: Path, meta: dict) -> Utterance:
        z = np.load(path)
        return Utterance(meta.get("id", path.stem), meta.get("voice", "?"), meta.get("text", ""), z["audio"],
                         z["phonemes"], z["starts"], z["ends"], z["visemes"].astype(np.int64), z["articulation"])


def load_heldout(data_dir: Path, n: int | None) -> list[Utterance]:
    index = json.loads((data_dir / "index.json").read_text())
    metas = sorted((m for m in index["utterances"] if m["split"] == "heldout"), key=lambda m: m["id"])
    if not metas:
        raise SystemExit(f"{data_dir} has no held-out utterances")
    return [Utterance.load(data_dir / m["file"], m) for m in metas[:n]]


def generate_heldout(n: int, seed: int, out: Path) -> list[Utterance]:
    """n held-out utterances from export.lipsync.data's planner and writer (held-out voices and sentences).

    plan(n + 1, …, heldout_frac = n/(n+1)) makes one val spec (index 0, not synthesized) and n held-out specs
    (indices 1 … n), so the set for n is a prefix of the set for n + 1.
    """
    from export.lipsync import data

    if not data.synth.espeak_available():
        raise SystemExit(f"libespeak-ng is missing ({data.synth.ESPEAK_LIB}): apt-get install espeak-ng, "
                         "or pass --data DIR")
    specs = [s for s in data.plan(n + 1, seed, 0.0, 0.0, n / (n + 1), False) if s.split == "heldout"]
    assert len(specs) == n and all(s.engine == "espeak" for s in specs), "export.lipsync.data.plan changed"
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    metas: list[dict] = []
    for i in range(0, n, data.CHUNK):
        chunk_metas, _ = data.run_chunk((str(out), seed, [asdict(s) for s in specs[i:i + data.CHUNK]]))
        metas += chunk_metas
    return [Utterance.load(out / m["file"], m) for m in metas]


# --------------------------------------------------------------------------- driving the runtime


@dataclass
class Streamed:
    """What a motion model showed for each video frame of one utterance (n = 0 … frames − 1)."""

    articulation: np.ndarray  # (frames, 7) returned MotionParams' articulation values
    viseme: np.ndarray | None  # (frames,) argmax of the model's viseme posteriors, None if the model has none
    step_s: np.ndarray  # (steps,) seconds per model.step
    late_frames: int = 0


def stream(model, audio: np.ndarray, fps: float, n_frames: int) -> Streamed:
    """Drive `model` as FramePipeline.step does (VAD, then motion.step, per frame slice) until frame n_frames − 1
    has come out; the audio is followed by silence."""
    from avatar_rt.audio.vad import SpeechDetector

    model.reset()
    lookahead = model.lookahead_frames
    steps = n_frames + lookahead
    pcm = np.zeros(frame_bounds(steps - 1, fps)[1], np.int16)
    k = min(len(pcm), len(audio))
    pcm[:k] = audio[:k]
    vad = SpeechDetector()
    art = np.zeros((n_frames, len(ARTICULATION)), np.float32)
    has_visemes = hasattr(model, "viseme_posteriors")
    vis = np.zeros(n_frames, np.int64) if has_visemes else None
    times = np.zeros(steps)
    for m in range(steps):
        a, b = frame_bounds(m, fps)
        chunk = np.array(pcm[a:b], dtype=np.int16)
        speech = vad.push(chunk)
        t0 = time.perf_counter()
        params = model.step(chunk, speech)
        times[m] = time.perf_counter() - t0
        n = m - lookahead
        if n >= 0:
            art[n] = [getattr(params, name) for name in ARTICULATION]
            if has_visemes:
                vis[n] = int(np.argmax(model.viseme_posteriors))
    return Streamed(art, vis, times, int(getattr(model, "late_frames", 0)))


@dataclass
class Collected:
    """Pooled per-frame predictions and targets over utterances."""

    pred_vis: list = field(default_factory=list)
    true_vis: list = field(default_factory=list)
    pred_art: list = field(default_factory=list)
    true_art: list = field(default_factory=list)
    onsets: list = field(default_factory=list)
    step_s: list = field(default_factory=list)
    late_frames: int = 0

    def summary(self, *, visemes: bool = True, closures: bool = True) -> dict:
        pa, ta = np.concatenate(self.pred_art), np.concatenate(self.true_art)
        out: dict = {"frames": int(len(pa))}
        if visemes and self.pred_vis:
            pv, tv = np.concatenate(self.pred_vis), np.concatenate(self.true_vis)
            out.update(viseme_metrics(pv, tv))
            out["confusions"] = top_confusions(pv, tv)
        if closures:
            out["bilabial"] = closure_metrics(self.onsets)
        out["jaw_corr"] = pearson(pa[:, 0], ta[:, 0])
        each = [pearson(p[:, 0], t[:, 0]) for p, t in zip(self.pred_art, self.true_art)]
        each = [r for r in each if r is not None]
        out["jaw_corr_per_utterance"] = float(np.mean(each)) if each else None
        out["jaw_corr_per_utterance_median"] = float(np.median(each)) if each else None
        out["jaw_corr_per_utterance_p10"] = float(np.percentile(each, 10)) if each else None
        out["articulation"] = {name: {"corr": pearson(pa[:, i], ta[:, i]),
                                      "mae": float(np.mean(np.abs(pa[:, i] - ta[:, i])))}
                               for i, name in enumerate(ARTICULATION)}
        if self.step_s:
            out["cost"] = percentiles_ms(np.concatenate(self.step_s))
        out["late_frames"] = self.late_frames
        return out


def evaluate(utterances: list[Utterance], fps: float, make_lipsync, make_loudness, progress: bool = True) -> dict:
    """Accuracy metrics of the runtime, the loudness jaw, the majority viseme and the targets themselves."""
    from tqdm import tqdm

    lip, loud, oracle = Collected(), Collected(), Collected()
    lip_model, loud_model = make_lipsync(), make_loudness()
    all_true, mean_jaw = [], []
    style, no_jitter = co.mean_style(), np.random.default_rng(0)  # the rng goes unused: the style has no jitter
    for i, u in enumerate(tqdm(utterances, desc="runtime", unit="utt", disable=not progress)):
        n_frames = frames_in(len(u.visemes), fps)
        hops = frame_hops(n_frames, fps)
        true_vis, true_art = u.visemes[hops], u.articulation[hops]
        segments = closure_segments(u.phonemes, u.starts, u.ends)
        all_true.append(true_vis)
        mean_jaw.append(co.targets([str(p) for p in u.phonemes], u.starts, u.ends, len(u.visemes), no_jitter,
                                   style=style).articulation[hops, 0])

        s = stream(lip_model, u.audio, fps, n_frames)
        lip.pred_vis.append(s.viseme), lip.true_vis.append(true_vis)
        lip.pred_art.append(s.articulation), lip.true_art.append(true_art)
        detected = (s.articulation[:, ARTICULATION.index("lip_press")] >= LIP_PRESS_DETECT) | (s.viseme == PP)
        lip.onsets += closure_onsets(segments, detected, fps)
        if i > 0:  # the first utterance warms up the session
            lip.step_s.append(s.step_s)
        lip.late_frames += s.late_frames

        b = stream(loud_model, u.audio, fps, n_frames)
        loud.pred_art.append(b.articulation), loud.true_art.append(true_art)
        if i > 0:
            loud.step_s.append(b.step_s)

        oracle.pred_vis.append(true_vis), oracle.true_vis.append(true_vis)
        oracle.pred_art.append(true_art), oracle.true_art.append(true_art)
        oracle_detected = (true_art[:, ARTICULATION.index("lip_press")] >= LIP_PRESS_DETECT) | (true_vis == PP)
        oracle.onsets += closure_onsets(segments, oracle_detected, fps)
    truth = np.concatenate(all_true)
    majority = int(np.bincount(truth, minlength=len(VISEMES)).argmax())
    groups = GROUP_OF[truth]
    majority_group = int(np.bincount(groups, minlength=len(ph.GROUPS)).argmax())
    lip_summary = lip.summary()
    pred_jaw, true_jaw, ref_jaw = (np.concatenate(a) for a in (
        [p[:, 0] for p in lip.pred_art], [t[:, 0] for t in lip.true_art], mean_jaw))
    lip_summary["jaw_corr_vs_mean_style"] = pearson(pred_jaw, ref_jaw)
    return {
        "lipsync": lip_summary,
        "mean_style_ceiling": {"jaw_corr": pearson(ref_jaw, true_jaw)},
        "loudness_jaw": loud.summary(visemes=False, closures=False),
        "majority": {"viseme": VISEMES[majority], "viseme_acc": float(np.mean(truth == majority)),
                     "group": ph.GROUPS[majority_group], "group_acc": float(np.mean(groups == majority_group))},
        "targets": {k: v for k, v in oracle.summary().items() if k in ("bilabial", "frames")},
    }


def render_lag(utterances: list[Utterance], fps: float, make_model, portrait, progress: bool = True,
               label: str = "render") -> dict:
    """Run the whole FramePipeline, re-detect the inner-lip gap, and find the video lead vs the audio envelope."""
    from tqdm import tqdm

    from avatar_rt.avatar.reference import detect_faces
    from avatar_rt.pipeline import FramePipeline

    curves = {"rendered": [], "commanded": [], "target": []}
    missed = frames = 0
    gaps_all = []
    for u in tqdm(utterances, desc=label, unit="utt", disable=not progress):
        model = make_model()
        pipe = FramePipeline(portrait, fps, motion_model=model)
        n_frames = frames_in(len(u.visemes), fps)
        steps = n_frames + pipe.lookahead_frames
        pcm = np.zeros(frame_bounds(steps - 1, fps)[1], np.int16)
        k = min(len(pcm), len(u.audio))
        pcm[:k] = u.audio[:k]
        env, gap, jaw = [], [], []
        for m in range(steps):
            a, b = frame_bounds(m, fps)
            out = pipe.step(pcm[a:b])
            if out is None:
                continue
            assert out.index == len(env), "the pipeline skipped a frame"
            faces = detect_faces(np.ascontiguousarray(out.image[:, :, ::-1]))
            if faces:
                gap.append(float(np.linalg.norm(faces[0][13, :2] - faces[0][14, :2])))
            else:
                gap.append(np.nan)
                missed += 1
            env.append(rms(out.audio))
            jaw.append(out.params.jaw_open)
        gap_a = np.asarray(gap)
        bad = ~np.isfinite(gap_a)
        if bad.all():
            continue
        if bad.any():  # a frame MediaPipe missed: bridge it from its neighbours
            gap_a[bad] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), gap_a[~bad])
        frames += len(gap_a)
        gaps_all.append(gap_a)
        target_jaw = u.articulation[frame_hops(n_frames, fps), 0]
        curves["rendered"].append(lag_curve(np.asarray(env), gap_a, fps))
        curves["commanded"].append(lag_curve(np.asarray(env), np.asarray(jaw), fps))
        curves["target"].append(lag_curve(np.asarray(env), target_jaw, fps))
    gaps = np.concatenate(gaps_all) if gaps_all else np.zeros(1)
    return {"utterances": len(utterances), "frames": frames, "face_missed_frames": missed,
            "mouth_gap_px": {"p5": float(np.percentile(gaps, 5)), "median": float(np.median(gaps)),
                             "p95": float(np.percentile(gaps, 95))},
            **{name: pooled_lead(c) for name, c in curves.items()}}


# --------------------------------------------------------------------------- teacher / student (stage B)


TS_ROWS = (  # (key, label): the metrics the student must hold within 10 % of the teacher
    ("viseme_acc", "15-viseme accuracy"),
    ("group_acc", "6-group accuracy"),
    ("bilabial_recall", "bilabial recall"),
    ("onset_median_ms", "closure onset |err| median ms"),
    ("jaw_corr", "jaw-open r per utterance"),
    ("video_lead_ms", "rendered video lead ms"),
)


def teacher_student_table(teacher: dict, student: dict, student_steps: int = 2) -> tuple[list[str], dict]:
    """Side-by-side lines for the stage-B teacher and its distilled student, and the verdicts.

    `teacher` / `student`: the TS_ROWS keys plus `ms_per_frame`. The student holds a row when it is within 10 %
    of the teacher's value; for the rows in milliseconds (which can sit near 0) within max(10 %, 10 ms), 10 ms
    being one hop and the lag search's step. The speed passes at ≥ 10× the teacher's.
    """
    lines = [f"{'metric':<32}{'teacher':>10}{f'student ({student_steps} steps)':>20}{'Δ':>10}  within 10 %"]
    verdict: dict = {}
    for key, label in TS_ROWS:
        t, s = teacher.get(key), student.get(key)
        if t is None or s is None:
            lines.append(f"{label:<32}{'—':>10}{'—':>20}")
            continue
        if key.endswith("_ms"):
            ok = abs(s - t) <= max(0.10 * abs(t), 10.0)
            delta = f"{s - t:+.0f} ms"
        else:
            rel = abs(s - t) / max(abs(t), 1e-9)
            ok = rel <= 0.10
            delta = f"{100 * rel:.1f} %"
        verdict[key] = ok
        lines.append(f"{label:<32}{t:>10.3f}{s:>20.3f}{delta:>10}  {'yes' if ok else 'NO'}")
    tm, sm = teacher.get("ms_per_frame"), student.get("ms_per_frame")
    if tm and sm:
        ratio = tm / sm
        verdict["speed"] = ratio >= 10.0
        lines.append(f"{'ms per frame (median)':<32}{tm:>10.3f}{sm:>20.3f}{f'{ratio:.1f}×':>10}  "
                     f"{'yes' if ratio >= 10 else 'NO'} (≥ 10× faster)")
    return lines, verdict


def stage_b_entries(manifest: dict) -> list[str]:
    return sorted(name for name in manifest.get("engines", {}) if name.startswith(STAGE_B_PREFIX))


def evaluate_stage_b(utterances: list[Utterance], engines_dir: Path, session, fps: float, progress: bool = True,
                     lip_utterances: int = 200, behaviour_utterances: int = 320) -> dict:
    """Teacher and student side by side: the lip-sync rows of the full runtime with each attached (stage B
    must leave the mouth alone), then the behaviour rows of benchmarks/lipsync_stage_b.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lipsync_stage_b as sb

    from avatar_rt.motion.behaviour import STUDENT, TEACHER, BehaviourModel
    from avatar_rt.motion.behaviour import load_session as load_behaviour
    from avatar_rt.motion.lipsync import LipSyncModel

    lip = {}
    for role, name in (("teacher", TEACHER), ("student", STUDENT)):
        b_session = load_behaviour(engines_dir / f"{name}.onnx")
        acc = evaluate(utterances[:lip_utterances], fps,
                       lambda: LipSyncModel(fps, session=session, engines_dir=engines_dir,  # noqa: B023
                                            behaviour=BehaviourModel(b_session)),  # noqa: B023
                       LoudnessJawModel, progress)["lipsync"]
        lip[role] = {"viseme_acc": acc["viseme_acc"], "group_acc": acc["group_acc"],
                     "bilabial_recall": acc["bilabial"]["recall"],
                     "onset_median_ms": acc["bilabial"]["onset_abs_median_ms"],
                     "jaw_corr": acc["jaw_corr_per_utterance"]}
    behaviour = sb.evaluate(utterances[:behaviour_utterances], engines_dir, session, seeds=1, progress=progress)
    behaviour.pop("first_stream", None)
    lines, verdict = teacher_student_table(lip["teacher"], lip["student"])
    lines = [f"lip sync with stage B attached ({min(lip_utterances, len(utterances))} utterances)"] + lines
    blines, bverdict = sb.table(behaviour)
    return {"status": "evaluated", "lip": lip, "behaviour": behaviour, "lines": lines + [""] + blines,
            "verdict": {**verdict, **{"behaviour_" + k: v for k, v in bverdict.items()}}}


# --------------------------------------------------------------------------- report


def probe_stream(model):
    """The StageAStream inside a LipSyncModel (or inside the --emotion wrapper around one)."""
    return model.stream if hasattr(model, "stream") else probe_stream(model.model)


def machine() -> dict:
    """The shared description (benchmarks/machine.py), with the whole load average."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import machine as shared

    info = shared()
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    return info


def judge(res: dict) -> dict:
    """Pass/fail per issue target: {name: {"target", "value", "pass"}} (pass None when not measured)."""
    lip = res["accuracy"]["lipsync"]
    bil = lip["bilabial"]
    lead = res.get("render", {}).get("rendered", {}).get("video_lead_ms") if res.get("render") else None
    cost = lip.get("cost", {}).get("median_ms")
    jaw = lip.get("jaw_corr_per_utterance")  # the judged reading: module docstring

    cost_limit = 1.5 if res.get("config", {}).get("phones_input") else 1.0  # issue 12: 1.5 ms with a new front end

    def row(name, value, ok):
        return {"target": TARGETS[name], "value": value, "pass": ok}

    out = {
        "viseme_acc": row("viseme_acc", lip["viseme_acc"], lip["viseme_acc"] is not None and lip["viseme_acc"] >= 0.70),
        "group_acc": row("group_acc", lip["group_acc"], lip["group_acc"] is not None and lip["group_acc"] >= 0.85),
        "bilabial": row("bilabial", [bil["recall"], bil["onset_abs_median_ms"]],
                        bil["recall"] is not None and bil["recall"] >= 0.95
                        and bil["onset_abs_median_ms"] is not None and bil["onset_abs_median_ms"] <= 40.0),
        "jaw_corr": row("jaw_corr", jaw, jaw is not None and jaw >= 0.85),
        "video_lead": row("video_lead", lead, None if lead is None else -20 <= lead <= 60),
        "cost": row("cost", cost, None if cost is None else cost <= cost_limit),
    }
    verdict = res.get("stage_b", {}).get("verdict")
    if verdict:
        lip_rows = [v for k, v in verdict.items() if not k.startswith("behaviour_")]
        speed = res["stage_b"]["behaviour"]
        ratio = speed["teacher"]["ms_per_frame"] / speed["student"]["ms_per_frame"]
        out["stage_b"] = row("stage_b", f"{sum(lip_rows)}/{len(lip_rows)} rows, {ratio:.1f}× faster",
                             all(lip_rows) and verdict.get("behaviour_speed", False))
    else:
        out["stage_b"] = row("stage_b", None, None)
    return out


def _f(x, fmt="{:.3f}", none="—"):
    return none if x is None else fmt.format(x)


def _pct(x):
    return _f(x, "{:.1%}")


def _lead_cell(x: dict | None) -> str:
    if not x or x.get("video_lead_ms") is None:
        return "—"
    ci = x.get("ci90_ms")
    ci = f", {ci[0]:+.0f}…{ci[1]:+.0f}" if ci else ""
    return f"{x['video_lead_ms']:+d} [{x['refined_ms']:+.0f}{ci}] ({x['peak_corr']:.2f})"


def report(res: dict) -> None:
    m = res["machine"]
    cfg = res["config"]
    print(f"lip sync benchmark: {cfg['model']} ({cfg['engines']}), emotion: {cfg.get('emotion', 'neutral')}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date']}, "
          f"load average {m['load_average']}")
    print(f"held-out: {cfg['utterances']} utterances ({cfg['data']}), {cfg['audio_s']:.0f} s of speech, "
          f"{cfg['voices']} voices; {cfg['fps']:g} fps, lookahead {cfg['lookahead_frames']} frames "
          f"({cfg['lookahead_ms']:.0f} ms)")
    acc = res["accuracy"]
    lip, loud, tgt, maj = acc["lipsync"], acc["loudness_jaw"], acc["targets"], acc["majority"]
    print()
    print(f"per video frame ({lip['frames']} frames), runtime as the pipeline drives it")
    print(f"{'':<34}{'lip sync':>12}{'loudness jaw':>14}{'targets':>10}")
    print(f"{'15-viseme accuracy':<34}{_pct(lip['viseme_acc']):>12}{'—':>14}{'':>10}   "
          f"(always '{maj['viseme']}': {_pct(maj['viseme_acc'])})")
    print(f"{'6-group accuracy':<34}{_pct(lip['group_acc']):>12}{'—':>14}{'':>10}   "
          f"(always '{maj['group']}': {_pct(maj['group_acc'])})")
    lb, tb = lip["bilabial"], tgt["bilabial"]
    print(f"{'bilabial closure recall':<34}{_pct(lb['recall']):>12}{'0 %':>14}{_pct(tb['recall']):>10}   "
          f"({lb['detected']}/{lb['closures']} closures)")
    for key, label in (("onset_abs_median_ms", "closure onset |error| median, ms"),
                       ("onset_abs_p90_ms", "closure onset |error| p90, ms"),
                       ("onset_signed_median_ms", "closure onset signed median, ms")):
        print(f"{label:<34}{_f(lb[key], '{:.0f}'):>12}{'—':>14}{_f(tb[key], '{:.0f}'):>10}")
    print(f"{'jaw-open r, per utterance (mean)':<34}{_f(lip.get('jaw_corr_per_utterance')):>12}"
          f"{_f(loud.get('jaw_corr_per_utterance')):>14}{'1.000':>10}   "
          f"(median {_f(lip.get('jaw_corr_per_utterance_median'))}, "
          f"10th percentile {_f(lip.get('jaw_corr_per_utterance_p10'))})")
    print(f"{'  pooled over all frames':<34}{_f(lip['jaw_corr']):>12}{_f(loud['jaw_corr']):>14}{'1.000':>10}   "
          "(counts each utterance's random speaker jaw range against the model)")
    if lip.get("jaw_corr_vs_mean_style") is not None:
        print(f"{'  vs mean-style trajectory':<34}{_f(lip['jaw_corr_vs_mean_style']):>12}{'':>14}"
              f"{_f(acc['mean_style_ceiling']['jaw_corr']):>10}   (targets column: mean style vs sampled, "
              "the pooled ceiling of a deterministic model)")
    print("articulation vs targets (corr / mean abs error), lip sync | loudness jaw:")
    for name in ARTICULATION:
        a, b = lip["articulation"][name], loud["articulation"][name]
        print(f"  {name:<16}{_f(a['corr'], '{:.2f}'):>6} / {a['mae']:.3f}   |"
              f"{_f(b['corr'], '{:.2f}'):>6} / {b['mae']:.3f}")
    if lip.get("confusions"):
        print("most frequent viseme errors (label → predicted, share of frames): " + ", ".join(
            f"{c['label']}→{c['predicted']} {c['share']:.1%}" for c in lip["confusions"]))
    if lip["late_frames"]:
        print(f"WARNING: {lip['late_frames']} frames came late (the runtime showed an older hop than due)")

    cost, lcost = lip.get("cost", {}), loud.get("cost", {})
    print()
    front = " with the phone-posterior front end" if res.get("config", {}).get("phones_input") else ""
    print(f"cost per video frame, one thread ({cost.get('frames', 0)} steps): lip sync{front} median "
          f"{_f(cost.get('median_ms'))} ms, p99 {_f(cost.get('p99_ms'))} ms; loudness jaw median "
          f"{_f(lcost.get('median_ms'))} ms, p99 {_f(lcost.get('p99_ms'))} ms")

    print()
    r = res.get("render")
    if r:
        gap = r["mouth_gap_px"]
        print(f"rendered video ({r['utterances']} utterances, {r['frames']} frames, {cfg['size']} px; MediaPipe "
              f"inner-lip gap 13↔14: median {gap['median']:.1f} px, p5–p95 {gap['p5']:.1f}–{gap['p95']:.1f}; "
              f"face missed in {r['face_missed_frames']} frames)")
        print("video lead = d maximising corr(mouth(t), audio RMS(t + d)); d > 0: the mouth moves before the sound "
              "(video leads), d < 0: video lags")
        rl = res.get("render_loudness")
        print("lead, ms: on the 10 ms grid [parabolic peak, 90 % interval over utterances] (peak correlation)")
        print(f"{'':<30}{'lip sync':>26}{'loudness jaw':>26}")
        for key, label in (("rendered", "rendered mouth gap"), ("commanded", "commanded jaw_open"),
                           ("target", "dataset target jaw (no model)")):
            a = r[key]
            b = rl[key] if rl else {}
            print(f"{label:<30}{_lead_cell(a):>26}{_lead_cell(b):>26}")
        per = r["rendered"].get("per_utterance_ms") or []
        if per:
            print(f"per-utterance rendered lead, ms: median {np.median(per):+.0f}, "
                  f"range {min(per):+d} … {max(per):+d}")
        if r["rendered"].get("peak_at_search_edge"):
            print("WARNING: the rendered lead peaks at the edge of the ±200 ms search")
    else:
        print("rendered video: skipped (--render 0)")

    print()
    print("teacher / student (stage B)")
    sb = res["stage_b"]
    if sb.get("lines"):
        for line in sb["lines"]:
            print("  " + line)
    else:
        print(f"  {sb['status']}")

    print()
    print("targets (issue 4)")
    for name, t in res["targets"].items():
        v = t["value"]
        if name in ("viseme_acc", "group_acc"):
            shown = _pct(v)
        elif name == "bilabial":
            shown = f"{_pct(v[0])}, {_f(v[1], '{:.0f}')} ms"
        elif name == "video_lead":
            shown = _f(v, "{:+d} ms")
        elif name == "cost":
            shown = _f(v, "{:.3f} ms")
        elif name == "stage_b":
            shown = v or "—"
        else:
            shown = _f(v)
        verdict = {True: "PASS", False: "FAIL", None: "not measured"}[t["pass"]]
        print(f"  {verdict:<13}{t['target']:<64} {shown}")


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


class WithEmotion:
    """The model's motion with an emotion applied as the pipeline applies edits (PC-Talk: speech must survive it)."""

    def __init__(self, model, emotion: str, intensity: float):
        from avatar_rt.edits.engine import EditNumbers
        from avatar_rt.edits.schema import EditState

        self.model = model
        self.numbers = EditNumbers.of(EditState(emotion={emotion: intensity}))
        self.lookahead_frames = model.lookahead_frames

    def __getattr__(self, name):  # viseme_posteriors, late_frames, … come from the model
        return getattr(self.model, name)

    def reset(self) -> None:
        self.model.reset()

    def step(self, chunk: np.ndarray, speech: bool):
        from avatar_rt.edits.engine import EditEngine
        from avatar_rt.motion.params import MotionParams
        from avatar_rt.pipeline import level_db

        params = self.model.step(chunk, speech)
        return MotionParams.from_vector(EditEngine.apply(params.to_vector(), self.numbers, level_db(chunk))).clipped()


def per_voice(a, make_lipsync) -> dict:
    """The per-voice section (benchmarks/lipsync_voices.py) with this run's model."""
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from benchmarks import lipsync_voices
    from export.lipsync import voicesets

    utts = voicesets.evaluation_set(REPO / "build" / "lipsync_eval", a.voices, progress=not a.quiet)
    rows = lipsync_voices.evaluate_voices(utts, a.fps, make_lipsync, progress=not a.quiet)
    rendered = None
    if a.render_real > 0:
        subset = lipsync_voices.render_subset(utts, a.render_real)
        rendered = lipsync_voices.render_closures(subset, a.fps, make_lipsync, load_portrait(DEFAULT_PORTRAIT, a.size),
                                                  progress=not a.quiet)
    return {"per_voice": a.voices, "rows": rows, "rendered": rendered,
            "verdict": lipsync_voices.judge(rows, rendered)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", type=Path, help="engines directory with the lip-sync model and its manifest "
                                                 "(default: the shipped engines/)")
    ap.add_argument("--data", type=Path, help="a dataset (export.lipsync.data) whose heldout split to use; "
                                              "default: synthesize held-out utterances into a temporary directory")
    ap.add_argument("--utterances", type=int, default=1000,
                    help="held-out utterances (default 1000: accuracies within ±0.3 %% between seeds)")
    ap.add_argument("--render", type=int, default=24,
                    help="utterances rendered for the video lag (default 24; 0 skips)")
    ap.add_argument("--size", type=int, default=512, help="rendered frame size in pixels (default 512)")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=7, help="which held-out utterances to synthesize (default 7)")
    ap.add_argument("--voices", type=int, default=30,
                    help="utterances per voice for the per-voice section (benchmarks/lipsync_voices.py: training, "
                         "held-out synthetic and real voices; default 30, 0 skips)")
    ap.add_argument("--render-real", type=int, default=6,
                    help="held-out real utterances per speaker rendered and re-detected (default 6, 0 skips)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--no-closure-boost", action="store_true",
                    help="stage A's own lip press only, without the acoustic model's p/b/m (avatar_rt.motion."
                         "closure_boost): the before of that change")
    ap.add_argument("--emotion", metavar="NAME[:INTENSITY]",
                    help="measure with an emotion applied as an edit (e.g. happy:1), to compare with neutral")
    a = ap.parse_args(argv)
    started = time.perf_counter()

    from avatar_rt.engines import EngineError, engine_path, load_manifest
    from avatar_rt.motion.lipsync import LipSyncModel, load_session

    engines_dir = a.engines or REPO / "engines"
    try:
        model_path = engine_path(ENGINE_NAME, engines_dir)
        manifest = load_manifest(engines_dir)
    except EngineError as err:
        where = "--engines " + str(a.engines) if a.engines else "engines/"
        print(f"no lip-sync model to evaluate in {where}: {err}", file=sys.stderr)
        if not a.engines:
            print("train one (`python -m export.lipsync.stage_a --data DIR --out engines`; docs/lipsync.md) or point "
                  f"--engines at a directory that holds {ENGINE_NAME}.onnx and its manifest.json", file=sys.stderr)
        return 2
    session = load_session(model_path)  # one session, shared by every fresh LipSyncModel (state lives in the model)

    def make_lipsync():
        model = LipSyncModel(a.fps, session=session, engines_dir=engines_dir, closure_boost=not a.no_closure_boost)
        if a.emotion:
            name, _, value = a.emotion.partition(":")
            return WithEmotion(model, name, float(value or 1.0))
        return model

    probe = make_lipsync()
    entry = manifest["engines"][ENGINE_NAME]

    with tempfile.TemporaryDirectory(prefix="lipsync-bench-") as tmp:
        t0 = time.perf_counter()
        if a.data:
            utts = load_heldout(a.data, a.utterances)
            data_desc = f"{a.data} heldout split"
        else:
            utts = generate_heldout(a.utterances, a.seed, Path(tmp))
            data_desc = f"synthesized, seed {a.seed}"
        data_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    accuracy = evaluate(utts, a.fps, make_lipsync, LoudnessJawModel, progress=not a.quiet)
    eval_s = time.perf_counter() - t0

    render = render_loud = None
    render_s = 0.0
    if a.render > 0:
        import cv2

        cv2.setNumThreads(1)
        from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait

        t0 = time.perf_counter()
        portrait = load_portrait(DEFAULT_PORTRAIT, size=a.size)
        subset = utts[:a.render]
        render = render_lag(subset, a.fps, make_lipsync, portrait, progress=not a.quiet, label="render lip sync")
        render_loud = render_lag(subset, a.fps, LoudnessJawModel, portrait, progress=not a.quiet,
                                 label="render loudness")
        render_s = time.perf_counter() - t0

    voices = None
    voices_s = 0.0
    if a.voices > 0:
        t0 = time.perf_counter()
        voices = per_voice(a, make_lipsync)
        voices_s = time.perf_counter() - t0

    sb_names = stage_b_entries(manifest)
    t0 = time.perf_counter()
    if not sb_names:
        stage_b = {"status": f"stage B not built yet (no {STAGE_B_PREFIX}* entries in {engines_dir / 'manifest.json'})",
                   "entries": []}
    elif a.emotion:
        stage_b = {"status": "stage B comparison skipped under --emotion", "entries": sb_names}
    else:
        stage_b = {"entries": sb_names, **evaluate_stage_b(utts, engines_dir, session, a.fps, not a.quiet)}
    stage_b_s = time.perf_counter() - t0

    res = {
        "benchmark": "lipsync",
        "machine": machine(),
        "config": {"engines": str(engines_dir), "closure_boost": not a.no_closure_boost, "model": f"{ENGINE_NAME} {entry.get('version', '?')} "
                                                         f"sha256 {entry.get('sha256', '?')[:12]}",
                   "data": data_desc, "utterances": len(utts),
                   "audio_s": float(sum(len(u.audio) for u in utts) / 16000),
                   "voices": len({u.voice for u in utts}), "fps": a.fps, "lookahead_frames": probe.lookahead_frames,
                   "phones_input": probe_stream(probe).phones is not None,
                   "lookahead_ms": probe.lookahead_ms, "size": a.size, "render_utterances": min(a.render, len(utts)),
                   "lip_press_detect": LIP_PRESS_DETECT, "emotion": a.emotion or "neutral",
                   "sign_convention": "video_lead_ms = d maximising corr(mouth(t), audio_rms(t + d)); "
                                      "d > 0: video leads the audio, d < 0: video lags"},
        "accuracy": accuracy,
        "render": render,
        "render_loudness": render_loud,
        "stage_b": stage_b,
        "voices": voices,
        "seconds": {"data": round(data_s, 1), "accuracy": round(eval_s, 1), "render": round(render_s, 1),
                    "stage_b": round(stage_b_s, 1), "voices": round(voices_s, 1),
                    "total": round(time.perf_counter() - started, 1)},
    }
    res["targets"] = judge(res)
    report(res)
    if voices is not None:
        from benchmarks import lipsync_voices

        print("\n## Per voice: training voices, held-out voices and families, real speech")
        lipsync_voices.report(voices["rows"], voices["verdict"], voices["rendered"])
    s = res["seconds"]
    print(f"\n{s['total']:.0f} s (data {s['data']:.0f} s, runtime pass {s['accuracy']:.0f} s, "
          f"render {s['render']:.0f} s, stage B {s['stage_b']:.0f} s, per voice {s['voices']:.0f} s)")
    if a.json:
        a.json.write_text(json.dumps(_jsonable(res), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
