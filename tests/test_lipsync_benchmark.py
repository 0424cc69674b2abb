"""benchmarks/lipsync.py's metrics on tiny synthetic cases whose answers are known (no trained model, seconds).

* a perfect predictor scores 100 %, a constant one scores its class's share;
* bilabial closures: runs of P/B/M merge, onsets are measured from the first overlapping frame's centre;
* the video-lead search finds a known shift, with the documented sign (d > 0: the mouth moves first);
* the runtime driver, fed an oracle that returns the targets with the pipeline's lookahead, lines every
  frame up with its own targets (100 %, correlation 1), so any off-by-one in the alignment shows;
* the teacher/student table and the "no model" exit.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys

import numpy as np
import pytest

from avatar_rt.motion.lipsync import hop_for_frame
from avatar_rt.motion.params import MotionParams
from conftest import REPO

spec = importlib.util.spec_from_file_location("bench_lipsync", REPO / "benchmarks" / "lipsync.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_lipsync"] = bench
spec.loader.exec_module(bench)

FPS = 25.0


def test_viseme_accuracy_perfect_and_constant():
    rng = np.random.default_rng(0)
    true = rng.integers(0, len(bench.VISEMES), 1000)
    perfect = bench.viseme_metrics(true, true)
    assert perfect["viseme_acc"] == 1.0 and perfect["group_acc"] == 1.0 and perfect["frames"] == 1000
    const = bench.viseme_metrics(np.zeros_like(true), true)  # always "sil"
    assert const["viseme_acc"] == pytest.approx(np.mean(true == 0))
    neutral = [i for i, g in enumerate(bench.GROUP_OF) if g == bench.GROUP_OF[0]]  # sil TH DD kk nn
    assert const["group_acc"] == pytest.approx(np.mean(np.isin(true, neutral)))
    # Confusions within a group cost viseme accuracy, not group accuracy.
    ih, e = bench.VISEMES.index("ih"), bench.VISEMES.index("E")
    t = np.array([ih] * 10)
    m = bench.viseme_metrics(np.array([e] * 10), t)
    assert m["viseme_acc"] == 0.0 and m["group_acc"] == 1.0
    assert bench.top_confusions(np.array([e] * 10), t)[0] == {"label": "ih", "predicted": "E", "share": 1.0}


def test_closure_segments_merge_runs():
    phonemes = ["sil", "AH", "M", "B", "AA", "P", "sil"]
    starts = [0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.6]
    ends = starts[1:] + [0.7]
    assert bench.closure_segments(phonemes, starts, ends) == [(0.2, 0.3), (0.5, 0.6)]


def test_closure_onsets_known():
    # 25 fps: frame n spans [40n, 40n + 40) ms, centre 40n + 20.
    segs = [(0.100, 0.180), (0.300, 0.330), (0.500, 0.560)]
    detected = np.zeros(20, bool)
    detected[2] = True  # frame 2 [80, 120) overlaps the first closure: centre 100 ms → 0 ms
    detected[8] = True  # frame 8 [320, 360) overlaps the second: centre 340 → +40 ms
    # third closure: frames 12–13 overlap it, neither detects; frame 14 does but starts after it
    detected[14] = True
    onsets = bench.closure_onsets(segs, detected, FPS)
    assert onsets[0] == pytest.approx(0.0) and onsets[1] == pytest.approx(40.0) and onsets[2] is None
    m = bench.closure_metrics(onsets)
    assert m["closures"] == 3 and m["detected"] == 2 and m["recall"] == pytest.approx(2 / 3)
    assert m["onset_abs_median_ms"] == pytest.approx(20.0)
    early = bench.closure_onsets([(0.130, 0.200)], np.eye(10, dtype=bool)[3], FPS)  # frame 3 centre 140 ms
    assert early[0] == pytest.approx(10.0)
    early = bench.closure_onsets([(0.150, 0.200)], np.eye(10, dtype=bool)[3], FPS)  # centre 140 < start 150
    assert early[0] == pytest.approx(-10.0)


def test_pearson():
    x = np.sin(np.linspace(0, 10, 200))
    assert bench.pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert bench.pearson(x, -x) == pytest.approx(-1.0)
    assert bench.pearson(x, np.zeros_like(x)) is None


def _smooth_signal(seconds: float, seed: int):
    """A random smooth positive signal f(t) (syllable-rate bumps), callable at any time."""
    rng = np.random.default_rng(seed)
    fine_t = np.arange(0, seconds + 1, 0.001)
    raw = rng.standard_normal(len(fine_t))
    k = np.exp(-0.5 * (np.arange(-150, 151) / 40.0) ** 2)
    fine = np.convolve(raw, k / k.sum(), mode="same")
    return lambda t: np.interp(t, fine_t, fine)


@pytest.mark.parametrize("shift_ms", [-120, -40, 0, 40, 80, 20, -20])
def test_video_lead_finds_known_shift(shift_ms):
    """mouth(t) = envelope(t + s): the mouth shows now what the audio does s later → video leads by s."""
    f = _smooth_signal(12.0, seed=1)
    n = np.arange(int(10 * FPS))
    t = (n + 0.5) / FPS
    envelope = f(t + 0.5)
    mouth = 7.0 * f(t + 0.5 + shift_ms / 1000) + 3.0  # scale and offset do not matter
    lags, corr, weight = bench.lag_curve(envelope, mouth, FPS)
    assert lags[0] == -200 and lags[-1] == 200 and np.all(np.diff(lags) == 10)
    lead = bench.pooled_lead([(lags, corr, weight)])
    assert lead["video_lead_ms"] == pytest.approx(shift_ms, abs=10 if shift_ms % 40 else 0)
    assert lead["peak_corr"] > 0.95
    assert lead["refined_ms"] == pytest.approx(shift_ms, abs=5)


def test_video_lead_pools_utterances():
    f = _smooth_signal(30.0, seed=2)
    curves = []
    for k in range(3):
        t = (np.arange(60) + 0.5) / FPS + 1 + 8 * k
        curves.append(bench.lag_curve(f(t), f(t - 0.080), FPS))  # video lags by 80 ms
    lead = bench.pooled_lead(curves)
    assert lead["video_lead_ms"] == -80 and lead["per_utterance_ms"] == [-80, -80, -80]


class OracleModel:
    """Returns the utterance's targets for frame n = step − lookahead, as a perfect runtime would."""

    def __init__(self, utt, lookahead: int, late: int = 0):
        self.utt, self.lookahead_frames, self.late = utt, lookahead, late  # `late`: frames behind its claim
        self.reset()

    def reset(self):
        self.m = 0
        self.viseme_posteriors = np.eye(len(bench.VISEMES))[0]

    def step(self, audio, speech):
        n = self.m - self.lookahead_frames - self.late
        self.m += 1
        if n < 0:
            return MotionParams()
        h = min(hop_for_frame(n, FPS), len(self.utt.visemes) - 1)
        self.viseme_posteriors = np.eye(len(bench.VISEMES))[self.utt.visemes[h]]
        a = self.utt.articulation[h]
        return MotionParams(**{name: float(a[i]) for i, name in enumerate(bench.ARTICULATION)})


def _synthetic_utterance(seed: int = 0) -> bench.Utterance:
    co = pytest.importorskip("export.lipsync.coarticulation")
    phonemes = ["sil", "M", "AA", "P", "IY", "B", "UW", "sil", "F", "AO", "M", "sil"]
    durations = [0.15, 0.07, 0.14, 0.09, 0.12, 0.06, 0.15, 0.10, 0.09, 0.16, 0.08, 0.2]
    ends = np.cumsum(durations)
    starts = np.concatenate([[0.0], ends[:-1]])
    n_samples = int(round(ends[-1] * 16000))
    t = co.targets(phonemes, starts, ends, co.frame_count(n_samples), np.random.default_rng(seed))
    audio = (np.random.default_rng(seed).standard_normal(n_samples) * 2000).astype(np.int16)
    return bench.Utterance("x", "synthetic", "", audio, np.array(phonemes), starts.astype(np.float32),
                           ends.astype(np.float32), t.visemes.astype(np.int64), t.articulation)


@pytest.mark.parametrize("lookahead", [0, 2, 3])
def test_driver_aligns_frames_with_targets(lookahead):
    utt = _synthetic_utterance()
    res = bench.evaluate([utt, utt], FPS, lambda: OracleModel(utt, lookahead), bench.LoudnessJawModel,
                         progress=False)
    lip = res["lipsync"]
    assert lip["frames"] == 2 * bench.frames_in(len(utt.visemes), FPS)
    assert lip["viseme_acc"] == 1.0 and lip["group_acc"] == 1.0
    assert lip["jaw_corr"] == pytest.approx(1.0)
    assert lip["bilabial"] == res["targets"]["bilabial"]
    assert lip["bilabial"]["closures"] == 2 * 4 and lip["bilabial"]["recall"] == 1.0
    assert res["loudness_jaw"]["frames"] == lip["frames"]


def test_mean_style_reference_separates_model_error_from_the_style_draw():
    """The oracle (the sampled target itself) correlates with the mean-style trajectory exactly as the ceiling
    does, and that ceiling is high but below 1: the style draw is what it takes away."""
    co = pytest.importorskip("export.lipsync.coarticulation")
    utt = _synthetic_utterance(2)
    res = bench.evaluate([utt], FPS, lambda: OracleModel(utt, 2), bench.LoudnessJawModel, progress=False)
    assert res["lipsync"]["jaw_corr_vs_mean_style"] == pytest.approx(res["mean_style_ceiling"]["jaw_corr"])
    assert 0.6 < res["mean_style_ceiling"]["jaw_corr"] < 0.999
    style = co.mean_style()
    assert style[co.STYLE_KEYS.index("jitter_ms")] == 0.0
    assert style[co.STYLE_KEYS.index("jaw_scale")] == pytest.approx(np.mean(co.STYLE_RANGES["jaw_scale"]))


def test_driver_detects_a_late_model():
    """A model one frame late loses accuracy: the driver does not absorb misalignment."""
    utt = _synthetic_utterance(1)
    late = bench.evaluate([utt], FPS, lambda: OracleModel(utt, 3), bench.LoudnessJawModel, progress=False)
    ok = bench.evaluate([utt], FPS, lambda: OracleModel(utt, 2), bench.LoudnessJawModel, progress=False)
    bad = bench.evaluate([utt], FPS, lambda: OracleModel(utt, 2, late=1), bench.LoudnessJawModel, progress=False)
    assert ok["lipsync"]["viseme_acc"] == late["lipsync"]["viseme_acc"] == 1.0
    assert bad["lipsync"]["viseme_acc"] < 0.9 and bad["lipsync"]["jaw_corr"] < 0.99


def test_frames_in():
    for n_hops in (1, 7, 100, 437):
        n = bench.frames_in(n_hops, FPS)
        assert hop_for_frame(n - 1, FPS) < n_hops <= hop_for_frame(n, FPS)


def test_teacher_student_table():
    teacher = {"viseme_acc": 0.80, "group_acc": 0.90, "bilabial_recall": 0.96, "onset_median_ms": 20.0,
               "jaw_corr": 0.90, "video_lead_ms": 20.0, "ms_per_frame": 8.0}
    student = dict(teacher, viseme_acc=0.70, video_lead_ms=28.0, onset_median_ms=35.0, ms_per_frame=0.5)
    lines, verdict = bench.teacher_student_table(teacher, student)
    assert "teacher" in lines[0] and "student (2 steps)" in lines[0]
    assert verdict["viseme_acc"] is False and verdict["group_acc"] is True and verdict["speed"] is True
    assert verdict["video_lead_ms"] is True and verdict["onset_median_ms"] is False  # ms rows: max(10 %, 10 ms)
    slow = bench.teacher_student_table(teacher, dict(teacher, ms_per_frame=1.0))[1]
    assert slow["speed"] is False and all(slow[k] for k, _ in bench.TS_ROWS)
    assert any("16.0×" in line for line in lines)
    assert bench.stage_b_entries({"engines": {"lipsync_stage_a": {}, "portrait_warp": {}}}) == []
    assert bench.stage_b_entries({"engines": {"lipsync_stage_b_student": {}, "lipsync_stage_b_teacher": {}}}) == [
        "lipsync_stage_b_student", "lipsync_stage_b_teacher"]


def test_no_model_exits_nonzero(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "engines": {}}))
    assert bench.main(["--engines", str(tmp_path), "--quiet"]) == 2
    assert "no lip-sync model" in capsys.readouterr().err


class SpeakerOracles(OracleModel):
    """One model for a run of utterances, as evaluate() uses it: on each reset it becomes the oracle of the next
    utterance, whose jaw trajectory is first passed through that utterance's `transform` (a gain, as speaker
    styles differ; or time reversal)."""

    def __init__(self, utts, transforms):
        self.lookahead_frames, self.late = 2, 0
        self.queue = iter(zip(utts, transforms))  # the driver resets before every utterance, the first included

    def reset(self):
        utt, transform = next(self.queue)
        articulation = utt.articulation.copy()
        articulation[:, 0] = transform(articulation[:, 0])
        self.utt = dataclasses.replace(utt, articulation=articulation)
        super().reset()


def test_jaw_is_judged_per_utterance_so_a_speaker_jaw_range_is_not_an_error():
    """Two utterances whose every jaw movement is read right, at different jaw ranges (as two speakers' styles
    differ), pass the judged per-utterance correlation and lose only in the pooled one; a jaw that moves at the
    wrong times (the trajectory played backwards) fails."""
    utts = [_synthetic_utterance(3), _synthetic_utterance(4)]
    ranges = [lambda jaw: 0.4 * jaw, lambda jaw: jaw]
    res = bench.evaluate(utts, FPS, lambda: SpeakerOracles(utts, ranges), bench.LoudnessJawModel, progress=False)
    lip = res["lipsync"]
    assert lip["jaw_corr_per_utterance"] == pytest.approx(1.0)
    assert lip["jaw_corr"] < 0.95
    verdict = bench.judge({"accuracy": res})["jaw_corr"]
    assert verdict["pass"] is True and verdict["value"] == pytest.approx(1.0)
    backwards = [lambda jaw: jaw[::-1]] * 2
    res = bench.evaluate(utts, FPS, lambda: SpeakerOracles(utts, backwards), bench.LoudnessJawModel,
                         progress=False)
    assert bench.judge({"accuracy": res})["jaw_corr"]["pass"] is False
