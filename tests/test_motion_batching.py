"""Cross-session batching of the lip-sync motion models (avatar_rt/motion/batching.py).

On the tiny training run's models (symbolic batch): sessions stepped together — joining and leaving mid-stream,
with different chunk lengths in one tick, from threads through the scheduler — give each session exactly what it
gets stepped alone. A graph with a literal batch of 1 (exported before issue 17) still runs, one call a session.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from avatar_rt.motion import batching
from avatar_rt.motion.behaviour import BehaviourModel
from avatar_rt.motion.behaviour import load_session as load_stage_b
from avatar_rt.motion.lipsync import LipSyncModel
from avatar_rt.motion.lipsync import load_session as load_stage_a

FPS = 25.0
SLICE = 640
TOL = 1e-6  # float tolerance: a row's numbers must not depend on who shares its call


def make_model(engines: Path, seed: int, stage_a: Path | None = None) -> LipSyncModel:
    behaviour = BehaviourModel(load_stage_b(engines / "lipsync_stage_b.onnx"), seed=seed)
    return LipSyncModel(FPS, session=load_stage_a(stage_a or engines / "lipsync_stage_a.onnx"),
                        behaviour=behaviour, engines_dir=engines)


def session_audio(speech: np.ndarray, k: int, frames: int) -> np.ndarray:
    """Session k's audio: the speech fixture from a different offset, a different gain."""
    start = (k * 37 * SLICE) % max(1, len(speech) - frames * SLICE)
    return (speech[start:start + frames * SLICE].astype(np.float32) * (0.5 + 0.3 * k)).astype(np.int16)


def speech_flag(chunk: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))) > 300 if len(chunk) else False


def alone(model: LipSyncModel, chunks: list[np.ndarray]) -> np.ndarray:
    return np.array([model.step(c, speech_flag(c)).to_vector() for c in chunks])


@pytest.fixture(scope="module")
def engines(tiny_run) -> Path:
    return tiny_run / "engines"


def test_sessions_joining_and_leaving_get_their_unbatched_outputs(engines, speech_16k):
    speech, _ = speech_16k
    ticks = 80
    # (joins at tick, leaves at tick): 0 stays, 1 joins late, 2 leaves early, 3 comes and goes
    spans = [(0, ticks), (12, ticks), (0, 41), (25, 60)]
    chunks = [[c for c in session_audio(speech, k, hi - lo).reshape(-1, SLICE)] for k, (lo, hi) in enumerate(spans)]
    expected = [alone(make_model(engines, seed=k), chunks[k]) for k in range(len(spans))]
    models = [make_model(engines, seed=k) for k in range(len(spans))]
    got: list[list[np.ndarray]] = [[] for _ in spans]
    shared = 0
    for tick in range(ticks):
        live = [k for k, (lo, hi) in enumerate(spans) if lo <= tick < hi]
        requests = [batching.StepRequest(models[k], chunks[k][tick - spans[k][0]],
                                         speech_flag(chunks[k][tick - spans[k][0]])) for k in live]
        shared += len(live) > 1
        for k, params in zip(live, batching.step_all(requests)):
            got[k].append(params.to_vector())
    assert shared > 50
    for k in range(len(spans)):
        diff = float(np.abs(np.array(got[k]) - expected[k]).max())
        print(f"session {k} (ticks {spans[k][0]}–{spans[k][1]}): max |batched − alone| {diff:.1e}")
        assert diff <= TOL
        assert np.abs(expected[k][:, 12]).max() > 0  # stage B moved the head: its path was exercised
    assert np.abs(np.array(got[0])).max() > 0.05  # the mouth moved


def test_different_chunk_lengths_in_one_tick(engines, speech_16k):
    speech, _ = speech_16k
    sizes = [(320, 960), (640,), (160, 480, 1280)]  # per session, repeated: 2, 4, 1/3/8 new feature frames a call
    streams = []
    for k, pattern in enumerate(sizes):
        audio, out, t = session_audio(speech, k, 60), [], 0
        i = 0
        while t + pattern[i % len(pattern)] <= len(audio):
            out.append(audio[t:t + pattern[i % len(pattern)]])
            t += pattern[i % len(pattern)]
            i += 1
        streams.append(out[:40])
    expected = [alone(make_model(engines, seed=k), streams[k]) for k in range(len(sizes))]
    models = [make_model(engines, seed=k) for k in range(len(sizes))]
    got = [[] for _ in sizes]
    for tick in range(40):
        requests = [batching.StepRequest(models[k], streams[k][tick], speech_flag(streams[k][tick]))
                    for k in range(len(sizes))]
        for k, params in enumerate(batching.step_all(requests)):
            got[k].append(params.to_vector())
    for k in range(len(sizes)):
        diff = float(np.abs(np.array(got[k]) - expected[k]).max())
        print(f"session {k} chunks {sizes[k]}: max |batched − alone| {diff:.1e}")
        assert diff <= TOL


def test_a_graph_with_a_literal_batch_of_one_still_runs(engines, speech_16k, tmp_path):
    """Graphs exported before issue 17 had batch 1 written into every input; the runtime calls them one
    session at a time and gets the same numbers."""
    model = onnx.load(str(engines / "lipsync_stage_a.onnx"))
    for value in list(model.graph.input) + list(model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == "batch":
                dim.Clear()
                dim.dim_value = 1
    literal = tmp_path / "stage_a_batch1.onnx"
    onnx.save(model, str(literal))
    speech, _ = speech_16k
    chunks = [list(session_audio(speech, k, 30).reshape(-1, SLICE)) for k in range(2)]
    expected = [alone(make_model(engines, seed=k), chunks[k]) for k in range(2)]
    models = [make_model(engines, seed=k, stage_a=literal) for k in range(2)]
    assert models[0].stream.batch_axes is None
    got = [[], []]
    for tick in range(30):
        requests = [batching.StepRequest(models[k], chunks[k][tick], speech_flag(chunks[k][tick])) for k in range(2)]
        for k, params in enumerate(batching.step_all(requests)):
            got[k].append(params.to_vector())
    for k in range(2):
        assert float(np.abs(np.array(got[k]) - expected[k]).max()) <= TOL


def test_scheduler_gathers_threads_and_survives_leavers(engines, speech_16k):
    """Three sessions step from their own threads through one scheduler; one leaves half-way. Each gets its
    unbatched outputs, the steps went out in shared calls, nobody waits for the one that left."""
    speech, _ = speech_16k
    ticks = [40, 40, 20]
    chunks = [list(session_audio(speech, k, n).reshape(-1, SLICE)) for k, n in enumerate(ticks)]
    expected = [alone(make_model(engines, seed=k), chunks[k]) for k in range(3)]
    models = [make_model(engines, seed=k) for k in range(3)]
    sched = batching.TickScheduler(window_s=0.5)  # generous: a loaded machine must still gather them
    got = [[] for _ in ticks]
    errors = []

    def run(k: int) -> None:
        try:
            for c in chunks[k]:
                got[k].append(sched.step(models[k], c, speech_flag(c)).to_vector())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            sched.leave(models[k])

    for m in models:
        sched.join(m)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    print(f"{sched.steps} steps in {sched.batches} calls")
    assert sched.steps == sum(ticks)
    assert sched.batches < 0.7 * sched.steps  # most steps shared a call
    for k in range(3):
        assert float(np.abs(np.array(got[k]) - expected[k]).max()) <= TOL
    assert sched.members == 0


def test_one_model_twice_in_a_tick_is_refused(engines):
    model = make_model(engines, seed=0)
    audio = np.zeros(SLICE, np.int16)
    with pytest.raises(ValueError, match="one step per tick"):
        batching.step_all([batching.StepRequest(model, audio, False), batching.StepRequest(model, audio, False)])


def test_one_scheduler_per_process():
    assert batching.scheduler() is batching.scheduler()
    assert isinstance(batching.scheduler(), batching.TickScheduler)
