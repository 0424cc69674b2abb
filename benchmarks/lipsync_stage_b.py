"""Stage B of the lip sync: the behaviour teacher and its distilled 2-step student, side by side.

    python benchmarks/lipsync_stage_b.py [--utterances 300] [--engines DIR] [--data DIR]

(`benchmarks/lipsync.py` runs the same comparison and adds the lip-sync rows of the
full runtime with each of them attached.)

Held-out utterances (voices and sentences never trained on) are joined into streams
of about a minute — phrases with pauses of 0.4–1.5 s, then 8 s of silence — and run
through the real runtime (`LipSyncModel` with a `BehaviourModel`) exactly as the
pipeline drives it, once with the teacher (many sampler steps) and once with the
student (2 steps), from the same seeds. Reported per model, and for the synthetic
behaviour targets of the same streams (`export.lipsync.behaviour`, default style) as
the reference a perfect model would match in distribution:

* blinks per minute (eyelid crossing 0.5 downwards) and their median length (ms ≥ 0.5);
* head yaw and pitch spread (std, degrees) and speed (RMS angular velocity, °/s);
* nod on accents: mean head-pitch rise in the 0.4 s after an accented vowel begins (°);
* brow raises per minute (crossing 0.2 upwards);
* jerk: RMS second difference of yaw (°/frame²): how smooth the head is;
* ms per behaviour frame: the sampler alone (median, one thread).

The student passes a row when it is within 10 % of the teacher; the speed when it is
≥ 10× faster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FPS = 25.0
SLICE = 640
DEG = 180.0 / np.pi
ROWS = (
    ("blinks_per_min", "blinks per minute", "{:.1f}"),
    ("blink_ms", "blink length, median ms", "{:.0f}"),
    ("yaw_std_deg", "head yaw spread, °", "{:.2f}"),
    ("pitch_std_deg", "head pitch spread, °", "{:.2f}"),
    ("head_speed_deg_s", "head speed RMS, °/s", "{:.2f}"),
    ("nod_deg", "nod on accents, °", "{:.2f}"),
    ("brows_per_min", "brow raises per minute", "{:.1f}"),
    ("jerk_deg", "yaw jerk RMS, °/frame²", "{:.3f}"),
)


@dataclass
class Stream:
    audio: np.ndarray  # int16 16 kHz
    accents_s: list[float]  # accented vowel onsets (s)
    phrases: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]  # phonemes, starts, ends, offset (s)


def make_streams(utterances, per_stream: int = 16, seed: int = 0) -> list[Stream]:
    """Held-out utterances joined into ~1 min streams with pauses, then 8 s of silence."""
    from export.lipsync import behaviour as bh

    rng = np.random.default_rng(seed)
    out = []
    for i in range(0, len(utterances), per_stream):
        parts, accents, phrases, t = [], [], [], 0.0
        for u in utterances[i:i + per_stream]:
            pause = np.zeros(int(rng.uniform(0.4, 1.5) * 16000), np.int16)
            parts += [pause, u.audio]
            t += len(pause) / 16000
            accents += [t + a for a, _ in bh.accents(u.phonemes, u.starts, u.ends, u.audio)]
            phrases.append((u.phonemes, u.starts, u.ends, t))
            t += len(u.audio) / 16000
        parts.append(np.zeros(8 * 16000, np.int16))
        out.append(Stream(np.concatenate(parts), accents, phrases))
    return out


def run(model, audio: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Behaviour per video frame (yaw, pitch, roll, brow, blink) through the runtime, and the sampler's seconds
    per behaviour frame."""
    from avatar_rt.audio.vad import SpeechDetector

    times: list[float] = []
    sampler = model.behaviour.sampler  # one `sample` call per behaviour frame (all its flow steps)
    inner = sampler.sample

    def timed(*args):
        t0 = time.perf_counter()
        out = inner(*args)
        times.append(time.perf_counter() - t0)
        return out

    sampler.sample = timed
    model.reset()
    vad = SpeechDetector()
    L = model.lookahead_frames
    pcm = np.concatenate([audio, np.zeros(SLICE * (L + 1), np.int16)])
    rows = []
    for m in range((len(pcm)) // SLICE):
        chunk = pcm[m * SLICE:(m + 1) * SLICE]
        p = model.step(chunk, vad.push(chunk))
        if m >= L:
            rows.append((p.head_yaw, p.head_pitch, p.head_roll, p.brow_raise_l, p.blink_l))
    del sampler.sample  # the class's method again
    return np.array(rows[:len(audio) // SLICE]), times


def target_behaviour(stream: Stream, n_frames: int, seed: int) -> np.ndarray:
    """The synthetic behaviour a training example would have for this stream (default style)."""
    from export.lipsync import behaviour as bh

    rng = np.random.default_rng(seed)
    phon, starts, ends = [], [], []
    for p, s, e, off in stream.phrases:
        phon += list(p)
        starts += list(np.asarray(s) + off)
        ends += list(np.asarray(e) + off)
    style = np.array([bh.DEFAULT_STYLE[k] for k in bh.STYLE], np.float32)
    x, _ = bh.behaviour(np.array(phon), np.array(starts), np.array(ends), stream.audio,
                        bh.frames_for_hops(len(stream.audio) // 160), rng, style)
    return x[:n_frames]


def stats(xs: list[np.ndarray], accents: list[list[float]]) -> dict:
    minutes = sum(len(x) for x in xs) / FPS / 60
    blinks, lengths, brows, nods, speeds, jerks = 0, [], 0, [], [], []
    for x, acc in zip(xs, accents):
        closed = x[:, 4] >= 0.5
        starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
        blinks += len(starts)
        for s in starts:
            e = s
            while e < len(closed) and closed[e]:
                e += 1
            lengths.append(1000.0 * (e - s) / FPS)
        up = x[:, 3] >= 0.2
        brows += int(np.sum(up[1:] & ~up[:-1]))
        for a in acc:
            k = int(a * FPS)
            if 2 <= k and k + 10 < len(x):
                nods.append(DEG * (x[k:k + 10, 1].max() - x[k - 2, 1]))
        speeds.append(DEG * FPS * np.diff(x[:, :2], axis=0))
        jerks.append(DEG * np.diff(x[:, 0], 2))
    allx = np.concatenate(xs)
    sp, jk = np.concatenate(speeds), np.concatenate(jerks)
    return {
        "blinks_per_min": blinks / minutes,
        "blink_ms": float(np.median(lengths)) if lengths else None,
        "yaw_std_deg": float(DEG * allx[:, 0].std()),
        "pitch_std_deg": float(DEG * allx[:, 1].std()),
        "head_speed_deg_s": float(np.sqrt(np.mean(np.sum(sp ** 2, axis=1)))),
        "nod_deg": float(np.mean(nods)) if nods else None,
        "brows_per_min": brows / minutes,
        "jerk_deg": float(np.sqrt(np.mean(jk ** 2))),
        "minutes": minutes,
    }


def evaluate(utterances, engines_dir: Path, stage_a_session, seeds: int = 1, progress: bool = True) -> dict:
    """{"teacher", "student", "targets"} → stats (+ ms_per_frame for the models)."""
    from tqdm import tqdm

    from avatar_rt.motion.behaviour import STUDENT, TEACHER, BehaviourModel, load_session
    from avatar_rt.motion.lipsync import LipSyncModel

    streams = make_streams(utterances)
    res = {}
    for role, name in (("teacher", TEACHER), ("student", STUDENT)):
        session = load_session(engines_dir / f"{name}.onnx")
        xs, accs, times = [], [], []
        for seed in range(seeds):
            for i, s in enumerate(tqdm(streams, desc=f"stage B {role} (seed {seed})", unit="stream",
                                       disable=not progress)):
                model = LipSyncModel(FPS, session=stage_a_session, engines_dir=engines_dir,
                                     behaviour=BehaviourModel(session, seed=1000 * seed + i))
                x, t = run(model, s.audio)
                xs.append(x), accs.append(s.accents_s), times.append(t)
                if seed == 0 and i == 0:
                    res.setdefault("first_stream", {})[role] = x
        r = stats(xs, accs)
        t = np.concatenate([np.asarray(v[10:]) for v in times])
        r["ms_per_frame"] = float(1e3 * np.median(t))
        r["p99_ms"] = float(1e3 * np.percentile(t, 99))
        r["steps"] = BehaviourModel(session).steps
        res[role] = r
    targets = [target_behaviour(s, len(s.audio) // SLICE, i) for i, s in enumerate(streams)]
    res["targets"] = stats(targets, [s.accents_s for s in streams])
    res["first_stream"]["targets"] = targets[0]
    res["first_stream"]["audio"] = streams[0].audio
    return res


def plot(first: dict, path: Path, seconds: float = 30.0) -> None:
    """Traces of one stream: teacher, student and a synthetic target over the speech envelope."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int(min(seconds * FPS, len(first["student"])))
    t = np.arange(n) / FPS
    audio = first["audio"][:n * SLICE].astype(np.float64).reshape(n, SLICE)
    env = np.sqrt(np.mean(audio ** 2, axis=1))
    rows = (("head yaw, °", 0, DEG), ("head pitch, ° (+ chin down)", 1, DEG), ("brow raise", 3, 1.0),
            ("blink (1 = shut)", 4, 1.0))
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 8), sharex=True)
    for ax, (label, k, scale) in zip(axes, rows):
        top = max(1e-6, max(float(np.abs(first[r][:n, k]).max()) for r in ("teacher", "student", "targets")) * scale)
        ax.fill_between(t, 0, env / max(env.max(), 1) * top, color="0.88", lw=0, label="speech envelope")
        ax.plot(t, first["targets"][:n, k] * scale, color="0.55", lw=1, label="a synthetic target (another sample)")
        ax.plot(t, first["teacher"][:n, k] * scale, color="C0", lw=1.2, label="teacher, 64 steps")
        ax.plot(t, first["student"][:n, k] * scale, color="C3", lw=1.2, ls="--", label="student, 2 steps")
        ax.set_ylabel(label, fontsize=9)
    axes[0].legend(loc="upper right", fontsize=8, ncol=4)
    axes[-1].set_xlabel("seconds (held-out voice and sentences, then silence)")
    fig.suptitle("Lip-sync stage B: head, brows and blinks sampled while speaking (same seed for teacher and student)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def table(res: dict) -> tuple[list[str], dict]:
    t, s, g = res["teacher"], res["student"], res["targets"]
    lines = [f"{'behaviour (stage B)':<28}{'teacher':>10}{'student':>10}{'Δ':>9}  within 10 %{'targets':>12}",
             f"{'  sampler steps':<28}{t['steps']:>10}{s['steps']:>10}"]
    verdict = {}
    for key, label, fmt in ROWS:
        a, b, ref = t.get(key), s.get(key), g.get(key)
        if a is None or b is None:
            lines.append(f"  {label:<26}{'—':>10}{'—':>10}")
            continue
        rel = abs(b - a) / max(abs(a), 1e-9)
        verdict[key] = rel <= 0.10
        lines.append(f"  {label:<26}{fmt.format(a):>10}{fmt.format(b):>10}{100 * rel:>8.1f}%  "
                     f"{'yes' if rel <= 0.1 else 'NO':<11}{fmt.format(ref) if ref is not None else '—':>12}")
    ratio = t["ms_per_frame"] / s["ms_per_frame"]
    verdict["speed"] = ratio >= 10
    lines.append(f"  {'ms per frame (median)':<26}{t['ms_per_frame']:>10.3f}{s['ms_per_frame']:>10.3f}"
                 f"{ratio:>8.1f}×  {'yes' if ratio >= 10 else 'NO'} (≥ 10× faster)")
    return lines, verdict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", type=Path, default=REPO / "engines")
    ap.add_argument("--data", type=Path, help="a dataset whose heldout split to use (default: synthesize)")
    ap.add_argument("--utterances", type=int, default=320, help="held-out utterances (16 per ~1 min stream)")
    ap.add_argument("--seeds", type=int, default=2, help="sampling seeds per stream")
    ap.add_argument("--seed", type=int, default=7, help="which held-out utterances to synthesize")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="also draw one stream's traces (teacher, student, a target) to a PNG")
    a = ap.parse_args(argv)
    import tempfile

    sys.path.insert(0, str(REPO / "benchmarks"))
    import lipsync as bench
    from machine import machine

    from avatar_rt.motion.lipsync import load_session

    with tempfile.TemporaryDirectory(prefix="stage-b-bench-") as tmp:
        utts = bench.load_heldout(a.data, a.utterances) if a.data else bench.generate_heldout(a.utterances, a.seed,
                                                                                              Path(tmp))
    t0 = time.perf_counter()
    res = evaluate(utts, a.engines, load_session(a.engines / "lipsync_stage_a.onnx"), a.seeds)
    m = machine()
    print(f"stage B benchmark: {a.engines}; {m['cpu']}, {m['cores']} cores, {m['date']}")
    print(f"{len(utts)} held-out utterances in {len(make_streams(utts))} streams × {a.seeds} seeds, "
          f"{res['student']['minutes']:.0f} min of video per model")
    lines, verdict = table(res)
    print("\n".join(lines))
    print(f"{time.perf_counter() - t0:.0f} s")
    first = res.pop("first_stream")
    if a.plot:
        plot(first, a.plot)
        print(f"wrote {a.plot}")
    if a.json:
        a.json.write_text(json.dumps({"machine": m, "results": res, "verdict": verdict}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
