"""Cross-session batching of the lip-sync motion models: many sessions' step of one tick, one ONNX call per stage.

A `LipSyncModel.step` is one stage A call (the frame's new feature frames, batch 1)
and, once a behaviour frame is ready, `steps` stage B calls (the flow sampler's Euler
steps, batch 1). `step_all` runs the same phases for many sessions at once:

1. every session's audio through its own feature streams (`StageAStream.prepare`);
2. stage A: the sessions that share a model and have the same number of new frames are
   stacked along the graph's symbolic `batch` axis (their states too; the GRU's batch
   is axis 1) into one call, and each gets its row back (`StageAStream.commit`);
   a session alone in its group, or a graph with a literal batch of 1 (exported before
   issue 17), is called alone;
3. stage B: each session queues its ready behaviour frames; one frame per session at a
   time (a session's next frame depends on its previous one) is sampled for all of
   them together — one call per sampler step for the sessions that share a model and
   a step count — until none has a frame left;
4. each session finishes its own step (silence gate, behaviour read-out).

Every row is computed from its own inputs and state only, so a session's output does
not depend on who shares the call; sessions join and leave between ticks by being in
the list or not. Models without these phases (the loudness jaw) just `step`.

`TickScheduler` gathers the calls of concurrent threads into such batches: each
caller's `step` waits until every joined session has submitted its step for the tick
(or `window_s` has passed) and one of them runs `step_all` for all. `scheduler()` is
the process's one instance.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from avatar_rt.motion.behaviour import BehaviourModel
from avatar_rt.motion.lipsync import LipSyncModel, StageAStream
from avatar_rt.motion.params import MotionParams


@dataclass
class StepRequest:
    model: object  # a LipSyncModel, or any MotionModel (stepped alone)
    audio: np.ndarray
    speech: bool


def run_stage_a(jobs: Sequence[tuple[StageAStream, dict[str, np.ndarray]]]) -> None:
    """One stage A call per group of streams sharing a model and a chunk length; each stream commits its row."""
    groups: dict[tuple, list[tuple[StageAStream, dict[str, np.ndarray]]]] = defaultdict(list)
    for stream, feed in jobs:
        batchable = stream.batch_axes is not None
        key = (id(stream.session), feed["mel"].shape[1]) if batchable else (id(stream),)
        groups[key].append((stream, feed))
    for group in groups.values():
        if len(group) == 1:
            stream, feed = group[0]
            stream.commit(feed, stream.run(feed))
            continue
        first = group[0][0]
        axes = first.batch_axes
        batched = {k: np.concatenate([feed[k] for _, feed in group], axis=0) for k in group[0][1]}
        for name, axis in axes.items():
            batched[name] = np.concatenate([stream.state[name] for stream, _ in group], axis=axis)
        res = first.call(batched)
        n_heads = len(first.output_names) - len(axes)
        state_axes = list(axes.values())
        for row, (stream, feed) in enumerate(group):
            mine = [r[row:row + 1] for r in res[:n_heads]]
            mine += [np.take(r, [row], axis=axis) for r, axis in zip(res[n_heads:], state_axes)]
            stream.commit(feed, mine)


def run_stage_b(models: Sequence[BehaviourModel]) -> None:
    """Sample every ready behaviour frame of `models`: per round one frame of each model that has one, in one
    sampler run (one network call per step) per group sharing a network and a step count."""
    waiting = list(models)
    while waiting:
        jobs = [(m, job) for m in waiting if (job := m.next_job()) is not None]
        groups: dict[tuple[int, int], list] = defaultdict(list)
        for m, job in jobs:
            groups[(id(m.session), m.steps)].append((m, job))
        for group in groups.values():
            context = np.concatenate([job[0] for _, job in group])
            noise = np.concatenate([job[1] for _, job in group])
            sample = group[0][0].sampler.sample(context, noise)
            for row, (m, _) in enumerate(group):
                m.complete(sample[row:row + 1])
        waiting = [m for m, _ in jobs]


def step_all(requests: Sequence[StepRequest], timings: dict[str, float] | None = None) -> list[MotionParams]:
    """Every request's `step(audio, speech)`, with the lip-sync models' calls batched across requests. Each
    model may appear once (a session has one step per tick). `timings`, if given, gets the seconds spent in
    the stage A and stage B calls added under "stage_a" and "stage_b" (benchmarks/motion_batching.py)."""
    if len({id(r.model) for r in requests}) != len(requests):
        raise ValueError("a motion model can take only one step per tick")
    results: list[MotionParams | None] = [None] * len(requests)
    lipsync: list[tuple[int, LipSyncModel]] = []
    stage_a_jobs = []
    for i, r in enumerate(requests):
        if isinstance(r.model, LipSyncModel):
            lipsync.append((i, r.model))
            feed = r.model.stream.prepare(r.audio)
            if feed is not None:
                stage_a_jobs.append((r.model.stream, feed))
        else:
            results[i] = r.model.step(r.audio, r.speech)
    t0 = time.perf_counter()
    run_stage_a(stage_a_jobs)
    t1 = time.perf_counter()
    finished = []
    for i, model in lipsync:
        params, hop = model.finish_stage_a(requests[i].speech)
        results[i] = params
        if hop is not None and model.behaviour is not None:
            model.queue_behaviour()
            finished.append((model, params, hop))
    t2 = time.perf_counter()
    run_stage_b([model.behaviour for model, _, _ in finished])
    if timings is not None:
        timings["stage_a"] = timings.get("stage_a", 0.0) + t1 - t0
        timings["stage_b"] = timings.get("stage_b", 0.0) + time.perf_counter() - t2
    for model, params, hop in finished:
        model.apply_behaviour(params, hop)
    return results  # type: ignore[return-value]


class _Pending:
    __slots__ = ("request", "result", "error")

    def __init__(self, request: StepRequest):
        self.request = request
        self.result: MotionParams | None = None
        self.error: BaseException | None = None


class TickScheduler:
    """Gathers concurrent sessions' motion steps of one tick into one `step_all`.

    Sessions `join` with their model and `leave` when they end. A `step` waits until every joined model has a
    step waiting, or `window_s` after it arrived; then the caller that notices runs all waiting steps together
    and hands each caller its own result (an error in the batch is raised in every caller of that batch).
    """

    def __init__(self, window_s: float = 0.002):
        self.window_s = window_s
        self._cv = threading.Condition()
        self._members: set[int] = set()
        self._waiting: list[_Pending] = []
        self._running = False
        self.batches = 0  # step_all calls made, and the steps they carried (for tests and benchmarks)
        self.steps = 0

    def join(self, model) -> None:
        with self._cv:
            self._members.add(id(model))

    def leave(self, model) -> None:
        with self._cv:
            self._members.discard(id(model))
            self._cv.notify_all()  # the others may now be complete

    @property
    def members(self) -> int:
        with self._cv:
            return len(self._members)

    def step(self, model, audio: np.ndarray, speech: bool) -> MotionParams:
        mine = _Pending(StepRequest(model, audio, speech))
        deadline = time.monotonic() + self.window_s
        with self._cv:
            self._waiting.append(mine)
            self._cv.notify_all()
            while mine.result is None and mine.error is None:
                ready = len(self._waiting) >= len(self._members) or time.monotonic() >= deadline
                if ready and not self._running and self._waiting:
                    self._run_waiting()
                    continue
                self._cv.wait(timeout=max(1e-4, deadline - time.monotonic()) if not self._running else None)
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _run_waiting(self) -> None:
        """Called holding the lock; runs the batch without it."""
        batch, self._waiting = self._waiting, []
        self._running = True
        self._cv.release()
        try:
            try:
                results = step_all([p.request for p in batch])
                for p, r in zip(batch, results):
                    p.result = r
            except BaseException as exc:  # every caller of this batch learns it
                for p in batch:
                    p.error = exc
        finally:
            self._cv.acquire()
            self._running = False
            self.batches += 1
            self.steps += len(batch)
            self._cv.notify_all()


_scheduler = TickScheduler()  # cheap to make: no model, no thread until sessions step through it


def scheduler() -> TickScheduler:
    """The process's one scheduler."""
    return _scheduler
