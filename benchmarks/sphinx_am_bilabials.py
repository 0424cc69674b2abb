"""Does PocketSphinx's acoustic model hear p/b/m where our lip-sync model does not? (issue 12 feasibility)

    OMP_NUM_THREADS=1 python benchmarks/sphinx_am_bilabials.py [--per-voice 30] [--voices V ...] [--json out.json]

Voices (default; `--voices` takes any of `export.lipsync.voicesets`' evaluation voices): the real held-out
speakers (real:librivox_ss01, real:wz2100_female; build/realspeech, forced-aligned by PocketSphinx) and the
held-out synthetic flite:awb / flite:rms (build/lipsync_eval, exact synthesizer times). Two closure detectors
are compared on the same closures and the same "far" frames:

* `sphinx`: P(P) + P(B) + P(M) from `export.lipsync.sphinx_am` (streaming CMN), per 10 ms frame (`@100`); at
  25 fps as the runtime shows stage A (`@25`: the hop holding each video frame's centre); and averaged over
  4 hops per video frame (`@25mean`);
* `lip_press`: the shipped stage A, streamed as a session does (`benchmarks.lipsync.stream`, 25 fps).

Per closure (a run of P/B/M segments) the peak score within ±40 ms (`lipsync_voices.closure_events`); negatives
are speech frames farther than 80 ms from any closure (`lipsync_voices.far_from_closures`). Printed per voice:
recall at the threshold that leaves ≤ 2 % of the far frames above it, AUC (P(closure peak > far frame), ties ½),
the median closure peak, and for lip_press also the issue's fixed 0.5 threshold. Also: the sphinx posterior's
frame argmax vs the alignment's phone (fillers = sil), and vs PocketSphinx's own allphone decoding of the
utterance; and the cost of one streamed 10 ms frame.

Caveat: the real speakers' phone times come from PocketSphinx's aligner, i.e. the same acoustic model (its
triphone senones) — on them the sphinx detector is judged against its own kind of labels. The synthetic voices'
times are exact.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.lipsync import runs  # noqa: E402
from benchmarks.lipsync_voices import (BILABIALS, PRESS, closure_events, far_from_closures,  # noqa: E402
                                       frame_centres)
from export.lipsync import sphinx_am as sa  # noqa: E402
from avatar_rt.audio import sphinx_mfcc as mf  # noqa: E402

VOICES = ("real:librivox_ss01", "real:wz2100_female", "flite:awb", "flite:rms")
MAX_FALSE = 0.02
FILLER_SIL = "sil"


def as_press(score: np.ndarray) -> np.ndarray:
    """A score per frame in the lip_press column of an articulation array, for lipsync_voices' helpers."""
    from avatar_rt.motion.lipsync import ARTICULATION

    art = np.zeros((len(score), len(ARTICULATION)), np.float32)
    art[:, PRESS] = score
    return art


def detector_rates(peaks: np.ndarray, far: np.ndarray) -> dict:
    """Recall at ≤ MAX_FALSE far frames above the threshold, AUC, median peak."""
    peaks, far = np.asarray(peaks, np.float64), np.asarray(far, np.float64)
    if len(peaks) == 0 or len(far) == 0:
        return {"recall_at_2pct": None, "threshold": None, "auc": None, "median_peak": None}
    thr = float(np.quantile(far, 1.0 - MAX_FALSE, method="higher"))  # share of far frames > thr is ≤ 2 %
    order = np.sort(far)
    below = np.searchsorted(order, peaks, side="left")
    ties = np.searchsorted(order, peaks, side="right") - below
    auc = float(np.mean((below + 0.5 * ties) / len(far)))
    return {"recall_at_2pct": float(np.mean(peaks > thr)), "threshold": thr, "auc": auc,
            "median_peak": float(np.median(peaks)), "false_at_thr": float(np.mean(far > thr))}


def frame_labels(phonemes, ends, n: int, fps: float) -> np.ndarray:
    """The aligned phone under each frame centre."""
    i = np.minimum(np.searchsorted(np.asarray(ends), frame_centres(n, fps), side="right"), len(phonemes) - 1)
    return np.array([str(p) for p in phonemes])[i]


def arpabet(names: np.ndarray) -> np.ndarray:
    names = np.asarray(names).astype(str)
    return np.where(np.char.startswith(names, "+") | (names == "SIL") | (names == ""), FILLER_SIL, names)


def allphone_frames(audio: np.ndarray, n: int) -> np.ndarray:
    """PocketSphinx's own phone-loop decoding (its allphone search, triphone senones), one phone per 10 ms frame."""
    import pocketsphinx as ps

    lm = Path(ps.get_model_path()) / "en-us" / "en-us-phone.lm.bin"
    d = ps.Decoder(allphone=str(lm), loglevel="FATAL", bestpath=False, samprate=mf.SAMPLE_RATE)
    d.start_utt()
    d.process_raw(np.asarray(audio, np.int16).tobytes(), full_utt=True)
    d.end_utt()
    out = np.full(n, "", dtype="<U8")
    for s in d.seg():
        out[s.start_frame:min(s.end_frame + 1, n)] = s.word
    return arpabet(out)


def stream_cost(model: sa.SphinxModel, audio: np.ndarray, frames: int = 1500) -> dict:
    """Seconds per 10 ms push of PhonePosteriorStream (one thread when OMP_NUM_THREADS=1), and the front end alone."""
    pcm = np.tile(audio, 1 + frames * mf.HOP // max(len(audio), 1))[:frames * mf.HOP]
    st, fe = sa.PhonePosteriorStream(model), mf.CepstrumStream()
    total, front = [], []
    for k in range(frames):
        chunk = pcm[k * mf.HOP:(k + 1) * mf.HOP]
        t0 = time.perf_counter()
        fe.push(chunk)
        front.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        st.push(chunk)
        total.append(time.perf_counter() - t0)
    total, front = np.array(total[50:]), np.array(front[50:])
    return {"median_ms": 1e3 * float(np.median(total)), "p99_ms": 1e3 * float(np.percentile(total, 99)),
            "front_end_median_ms": 1e3 * float(np.median(front))}


def evaluate(utts, sphinx: sa.SphinxModel, make_lipsync, progress: bool = True) -> dict:
    from tqdm import tqdm

    from benchmarks.lipsync import frame_hops, frames_in, stream
    from export.lipsync import coarticulation as co

    rows: dict[str, dict] = {}
    pbm = [sphinx.phones.index(p) for p in ("P", "B", "M")]
    phones = np.array(sphinx.phones)
    lip = make_lipsync()
    for u in tqdm(utts, desc="utterances", unit="utt", disable=not progress):
        keys = ("s100", "s100_far", "s25", "s25_far", "m25", "m25_far", "lp", "lp_far", "agree", "agree_speech",
                "allphone", "allphone_speech")
        r = rows.setdefault(u.voice, {k: [] for k in keys})
        ph_ = [str(p) for p in u.phonemes]
        closures = runs(ph_, u.starts, u.ends, BILABIALS)
        post = sa.phone_posteriors(sphinx, u.audio)
        score = post[:, pbm].sum(axis=1)
        n4 = len(score) // 4
        score25 = score[frame_hops(frames_in(len(score), 25.0), 25.0)]  # the hop a 25 fps frame shows, as the runtime
        mean25 = score[:4 * n4].reshape(n4, 4).mean(axis=1)
        n_frames = frames_in(co.frame_count(len(u.audio)), 25.0)
        press = stream(lip, u.audio, 25.0, n_frames).articulation[:, PRESS]
        for key, s, fps in (("s100", score, 100.0), ("s25", score25, 25.0), ("m25", mean25, 25.0),
                            ("lp", press, 25.0)):
            r[key] += [e["peak"] for e in closure_events(as_press(s), closures, fps)]
            r[key + "_far"] += list(s[far_from_closures(len(s), ph_, u.starts, u.ends, closures, fps)])
        lab = arpabet(frame_labels(ph_, u.ends, len(post), 100.0))
        arg = arpabet(phones[post.argmax(axis=1)])
        ps_lab = allphone_frames(u.audio, len(post))
        r["agree"] += list(arg == lab)
        r["agree_speech"] += list((arg == lab)[lab != FILLER_SIL])
        r["allphone"] += list(arg == ps_lab)
        r["allphone_speech"] += list((arg == ps_lab)[ps_lab != FILLER_SIL])
    out = {}
    for v, r in rows.items():
        out[v] = {"closures": len(r["lp"]),
                  "sphinx@100": detector_rates(r["s100"], r["s100_far"]),
                  "sphinx@25": detector_rates(r["s25"], r["s25_far"]),
                  "sphinx@25mean": detector_rates(r["m25"], r["m25_far"]),
                  "lip_press": {**detector_rates(r["lp"], r["lp_far"]),
                                "closed_at_0.5": float(np.mean(np.array(r["lp"]) >= 0.5)),
                                "false_at_0.5": float(np.mean(np.array(r["lp_far"]) >= 0.5))},
                  "argmax_vs_alignment": float(np.mean(r["agree"])),
                  "argmax_vs_alignment_speech": float(np.mean(r["agree_speech"])),
                  "argmax_vs_allphone": float(np.mean(r["allphone"])),
                  "argmax_vs_allphone_speech": float(np.mean(r["allphone_speech"]))}
    return out


def load_voices(per_voice: int, progress: bool, voices: tuple[str, ...] = VOICES) -> list:
    """The voices' evaluation utterances, from the caches the lip-sync benchmark fills (read, never rewritten)."""
    from export.lipsync import voicesets

    real = [u for u in voicesets.real_evaluation(voicesets.REAL_CACHE, progress) if u.voice in voices]
    synth = []
    if any(not v.startswith("real:") for v in voices):
        synth = [u for u in voicesets.evaluation_set(REPO / "build" / "lipsync_eval", per_voice, progress)
                 if u.voice in voices and u.kind == "synthetic"]
    return real + synth


def report(res: dict, cost: dict) -> None:
    def c(x, pct=False):
        return "—" if x is None else (f"{100 * x:5.1f} %" if pct else f"{x:.3f}")

    print(f"\n{'voice':<20} {'p/b/m':>5} {'detector':<13} {'recall@≤2%':>10} {'thr':>6} {'AUC':>6} {'med peak':>8}")
    for v, r in res.items():
        for name in ("sphinx@100", "sphinx@25", "sphinx@25mean", "lip_press"):
            d = r[name]
            print(f"{v:<20} {r['closures']:>5} {name:<13} {c(d['recall_at_2pct'], True):>10} {c(d['threshold']):>6} "
                  f"{c(d['auc']):>6} {c(d['median_peak']):>8}")
        lp = r["lip_press"]
        print(f"{'':<20} {'':>5} lip_press ≥ 0.5: {c(lp['closed_at_0.5'], True)} closed, "
              f"{c(lp['false_at_0.5'], True)} far frames pressed")
        print(f"{'':<20} {'':>5} sphinx argmax = aligned phone {c(r['argmax_vs_alignment'], True)} of frames "
              f"({c(r['argmax_vs_alignment_speech'], True)} speech); = PocketSphinx allphone "
              f"{c(r['argmax_vs_allphone'], True)} ({c(r['argmax_vs_allphone_speech'], True)} speech)")
    print(f"\ncost per streamed 10 ms frame (one thread): median {cost['median_ms']:.3f} ms, "
          f"p99 {cost['p99_ms']:.3f} ms; front end alone {cost['front_end_median_ms']:.3f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-voice", type=int, default=30, help="utterances per synthetic voice (its cache file)")
    ap.add_argument("--voices", nargs="+", default=list(VOICES), help=f"voices (default: {' '.join(VOICES)})")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    from avatar_rt.engines import engine_path
    from avatar_rt.motion.lipsync import ENGINE_NAME, LipSyncModel, load_session

    session = load_session(engine_path(ENGINE_NAME, REPO / "engines"))
    sphinx = sa.load_model()
    utts = load_voices(a.per_voice, not a.quiet, tuple(a.voices))
    t0 = time.perf_counter()
    res = evaluate(utts, sphinx, lambda: LipSyncModel(25.0, session=session), progress=not a.quiet)
    cost = stream_cost(sphinx, utts[0].audio)
    report(res, cost)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if a.json:
        a.json.write_text(json.dumps({"voices": res, "cost": cost}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
