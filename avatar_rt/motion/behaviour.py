"""Stage B at run time: head motion, brow raises and blinks sampled from the flow model, frame by frame.

The network (engines/lipsync_stage_b.onnx, export/lipsync/stage_b.py) gives the
velocity of the next behaviour frame's change; `FlowSampler` turns noise into that
change in `steps` steps (2 for the distilled student, more for the teacher); this
class builds the network's context exactly as training did and integrates the
changes into the trajectory.

Clock: behaviour frames run at 25 Hz whatever the video rate; frame k belongs to
hop 4k + 2 (its centre) and needs stage A's rows up to frame k + lookahead (0 for
the shipped model: its rows carry the energy 80 ms ahead instead), so it is ready
as soon as stage A has hop 4(k + lookahead) + 2 — at 25 fps exactly when the
lip-sync model returns video frame k: stage B adds no latency. At other rates the
video frame takes the value interpolated at its own hop, from the frames ready so
far.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avatar_rt.engines import EngineError, Runner, open_model
from avatar_rt.motion.sampler import FlowSampler

STUDENT = "lipsync_stage_b"
TEACHER = "lipsync_stage_b_teacher"
OUTPUTS = ("head_yaw", "head_pitch", "head_roll", "brow_raise", "blink")


def load_session(path: Path) -> Runner:
    """Stage B on the process's backend (avatar_rt.engines.select)."""
    return open_model(path, "behaviour model")


class BehaviourModel:
    """Samples behaviour frames from stage A's per-frame rows; `value_at` reads the trajectory."""

    def __init__(self, session: Runner, *, steps: int | None = None, seed: int = 0):
        meta = session.metadata
        try:
            self.names = tuple(meta["behaviour"].split(","))
            self.history = int(meta["history"])
            self.lookahead = int(meta["lookahead"])
            self.energy_ahead = int(meta.get("energy_ahead_hops", "0"))
            self.hops_per_frame = int(meta["hops_per_frame"])
            self.cond_dim = sum(json.loads(meta["cond"]).values())
            self.x_scale = np.array(json.loads(meta["x_scale"]), np.float32)
            self.d_scale = np.array(json.loads(meta["d_scale"]), np.float32)
            self.limits = np.array(json.loads(meta["limits"]), np.float32)
            ranges = json.loads(meta["style_ranges"])
            self.style_names = tuple(meta["style"].split(","))
            self.style_ranges = {k: tuple(ranges[k]) for k in self.style_names}
            self.style_defaults = json.loads(meta["style_defaults"])
            self.default_steps = int(meta["steps"])
            self.role = meta.get("role", "?")
            self.stage_a_sha256 = meta.get("stage_a_sha256", "")
        except (KeyError, ValueError) as err:
            raise EngineError(f"behaviour model lacks its metadata ({err}): rebuild it with export.lipsync.stage_b")
        if self.names != OUTPUTS:
            raise EngineError(f"behaviour model outputs {self.names}, the runtime expects {OUTPUTS}")
        self.session = session
        self._style_high = np.array([self.style_ranges[k][1] for k in self.style_names], np.float32)
        self.sampler = FlowSampler(self._velocity, steps or self.default_steps)
        self.seed = seed
        self.style = dict(self.style_defaults)
        self.head_gain = 1.0
        self.reset()

    # The step count is the sampler's setting; exposed here for callers and benchmarks.
    @property
    def steps(self) -> int:
        return self.sampler.steps

    @steps.setter
    def steps(self, value: int) -> None:
        self.sampler.steps = value

    def set_style(self, **style: float) -> None:
        """`motion` (0 still … 1 typical … 2 animated) and `blink_per_min`, clipped to the trained ranges.

        A `motion` beyond the trained range keeps the model at its top style and scales the head angles
        by the rest (`head_gain`): the edit API allows head_motion up to 3."""
        for key, value in style.items():
            if key not in self.style_ranges:
                raise ValueError(f"unknown behaviour style {key!r}; known: {', '.join(self.style_names)}")
            lo, hi = self.style_ranges[key]
            value = float(value) if np.isfinite(value) else float(self.style_defaults[key])
            self.style[key] = float(np.clip(value, lo, hi))
            if key == "motion":
                self.head_gain = max(1.0, value / hi) if hi > 0 else 1.0

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.frames: list[np.ndarray] = []  # generated behaviour frames, k = 0, 1, …
        self._cond: list[np.ndarray] = []  # stage A rows, k = 0, 1, …
        self._hist = np.zeros((self.history, len(self.names)), np.float32)
        self._offset = 0  # absolute number of the first kept frame (old frames are forgotten)
        self._job_open = False

    def _velocity(self, x: np.ndarray, t: np.ndarray, context: np.ndarray) -> np.ndarray:
        return self.session.run({"x": x, "t": t, "context": context}, ["velocity"])["velocity"]

    def rows_needed(self) -> int:
        """Stage A rows needed before the next frame can be sampled."""
        return len(self.frames) + self.lookahead + 1

    def push_row(self, row: np.ndarray) -> None:
        """Stage A's row for the next behaviour frame (articulation, viseme posteriors, energy at its hop); samples
        every frame it makes ready."""
        self.add_row(row)
        self.sample_pending()

    def sample_pending(self) -> None:
        """Sample every frame the rows so far make ready, one network call per sampler step (batch 1)."""
        while (job := self.next_job()) is not None:
            self.complete(self.sampler.sample(*job))

    # push_row in phases, so that avatar_rt.motion.batching can sample many streams' frames in one call per
    # sampler step: add_row, then next_job → (sampler) → complete until next_job returns None.

    def add_row(self, row: np.ndarray) -> None:
        """Stage A's row for the next behaviour frame, kept until `next_job` samples it."""
        row = np.asarray(row, np.float32)
        if not np.isfinite(row).all():  # (np.nan_to_num costs more than the network)
            row = np.where(np.isfinite(row), row, 0.0).astype(np.float32)
        if row.shape != (self.cond_dim,):
            raise ValueError(f"a conditioning row has {self.cond_dim} values, got {row.shape}")
        self._cond.append(row)

    def next_job(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(context (1, C), noise (1, D)) of the next frame to sample, None until its rows are in; `complete` must
        take its sample before the next call (the noise comes from this stream's generator, in frame order)."""
        if self._job_open:
            raise RuntimeError("the previous behaviour frame has not been completed")
        if len(self._cond) < self.rows_needed():
            return None
        k = len(self.frames)
        lo = k - self.history
        rows = [self._cond[max(0, j)] for j in range(lo, k + self.lookahead + 1)]
        style = np.array([self.style[s] for s in self.style_names], np.float32) / self._style_high
        context = np.concatenate([(self._hist / self.x_scale).ravel(), np.concatenate(rows), style])[None]
        noise = self._rng.standard_normal((1, len(self.names))).astype(np.float32)
        self._job_open = True
        return context.astype(np.float32), noise

    def complete(self, sample: np.ndarray) -> None:
        """The sampler's output (1, D) for the frame of the last `next_job`: the frame joins the trajectory."""
        self._job_open = False
        change = np.asarray(sample, np.float32)[0] * self.d_scale
        if not np.isfinite(change).all():
            change = np.zeros_like(change)
        x = np.clip(self._hist[-1] + change, -self.limits, self.limits)
        x[3:] = np.maximum(x[3:], 0.0)  # brow raise and blink are one-sided
        if self.style.get("blink_per_min", 1.0) < 0.5:
            # "Stop blinking" must mean none at all; the model, conditioned on a rate of 0, only blinks less.
            x[4] = 0.0
        self._hist = np.concatenate([self._hist[1:], x[None]])
        self.frames.append(x)
        # Only the history and the interpolation window are ever read again: keep memory flat.
        if len(self._cond) > 4 * self.history + 64:
            self._trim(len(self._cond) - (2 * self.history + 32))

    def _trim(self, drop: int) -> None:
        """Forget the oldest `drop` frames and rows, keeping absolute frame numbers through an offset."""
        self._offset += drop
        self._cond = self._cond[drop:]
        self.frames = self.frames[drop:]

    def value_at(self, hop: float) -> np.ndarray | None:
        """The behaviour at a hop (linear between frames; the newest frame beyond them), None before any."""
        if not self.frames:
            return None
        pos = (hop - self.hops_per_frame // 2) / self.hops_per_frame - self._offset
        if pos <= 0:
            x = self.frames[0].copy()
        elif pos >= len(self.frames) - 1:
            x = self.frames[-1].copy()
        else:
            i = int(pos)
            w = pos - i
            x = (1 - w) * self.frames[i] + w * self.frames[i + 1]
        x[:3] *= self.head_gain
        return x
