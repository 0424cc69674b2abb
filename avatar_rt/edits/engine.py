"""One session's edits over time: transitions, scheduled edits, undo, applied every frame.

The engine keeps the *target* state (what the user asked for, persisted) and the
*numbers* the frames see, which ease from the old values to the new over the
transition (smoothstep, default 300 ms) starting at the edit's media time. A new
edit mid-transition starts from wherever the numbers are, so nothing jumps.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass

import numpy as np

from avatar_rt.edits import emotions, speech_style
from avatar_rt.edits.schema import EditError, EditRequest, EditState
from avatar_rt.edits.store import EditStore
from avatar_rt.motion.params import PARAM_INDEX

MAX_PENDING = 64  # scheduled edits waiting for their media time, per session
_VISEMES = tuple(speech_style.VISEME_SHAPES)


@dataclass(frozen=True)
class EditNumbers:
    """A state as the numbers the frame path uses; these are what transitions interpolate."""

    emotion: np.ndarray  # (29,) offsets before speech adaptation
    lip_scale: float
    loudness_follow: float  # 0 = fixed scale, 1 = follows loudness
    viseme_scales: np.ndarray  # (14,)
    head_motion: float
    blink_rate: float
    gaze: np.ndarray  # (2,)
    glasses: float = 0.0

    @classmethod
    def of(cls, state: EditState) -> EditNumbers:
        return cls(emotion=emotions.mix(state.region_weights()), lip_scale=state.lip_scale,
                   loudness_follow=1.0 if state.lip_scale_mode == "loudness" else 0.0,
                   viseme_scales=np.array([state.viseme_style.get(v, 1.0) for v in _VISEMES], dtype=np.float32),
                   head_motion=state.head_motion, blink_rate=state.blink_rate,
                   gaze=np.array(state.gaze, dtype=np.float32), glasses=state.glasses)

    def lerp(self, other: EditNumbers, t: float) -> EditNumbers:
        mix = lambda a, b: a + (b - a) * t  # noqa: E731
        return EditNumbers(mix(self.emotion, other.emotion), mix(self.lip_scale, other.lip_scale),
                           mix(self.loudness_follow, other.loudness_follow),
                           mix(self.viseme_scales, other.viseme_scales), mix(self.head_motion, other.head_motion),
                           mix(self.blink_rate, other.blink_rate), mix(self.gaze, other.gaze),
                           mix(self.glasses, other.glasses))


@dataclass
class _Transition:
    start: float
    end: float
    source: EditNumbers
    target: EditNumbers

    def at(self, t: float) -> EditNumbers:
        if t >= self.end or self.end <= self.start:
            return self.target
        if t <= self.start:
            return self.source
        x = (t - self.start) / (self.end - self.start)
        return self.source.lerp(self.target, x * x * (3 - 2 * x))


class EditEngine:
    def __init__(self, avatar_id: str, store: EditStore | None):
        self.avatar_id = avatar_id
        self.store = store
        state, version = store.load(avatar_id) if store else (EditState(), 0)
        self.state = state
        self.version = version
        numbers = EditNumbers.of(state)
        self._transition = _Transition(0.0, 0.0, numbers, numbers)
        self._pending: list = []  # heap of (at, seq, state, transition_s)
        self._seq = itertools.count()
        self._lock = threading.Lock()  # edits arrive on the event loop; frames read on the render thread

    # --- control side (event loop) ------------------------------------------
    def submit(self, request: EditRequest, now: float, raw: dict | None = None) -> int:
        """Validate-merge-persist-schedule; returns the new version once it is durable."""
        with self._lock:
            if request.at is not None and request.at > now and len(self._pending) >= MAX_PENDING:
                raise EditError(f"too many scheduled edits (at most {MAX_PENDING} pending)", code="edit_limit",
                                status=429)
        previous = self.state
        state = previous.merged(request.fields)
        self._commit(previous, state, raw if raw is not None else {"set": request.fields})
        self._schedule(state, now if request.at is None else max(now, request.at), request.transition_ms / 1000.0,
                       now)
        return self.version

    def undo(self, now: float, transition_s: float = 0.3) -> int:
        if self.store is None:
            raise EditError("undo needs the edit store", code="no_history", status=409)
        restored = self.store.undo(self.avatar_id)
        if restored is None:
            raise EditError("nothing to undo", code="no_history", status=409)
        self.state, self.version = restored
        self._schedule(self.state, now, transition_s, now)
        return self.version

    def apply_state(self, state: EditState, now: float, transition_s: float, request: dict) -> int:
        """Replace the whole state (a preset), persisted and eased like any edit."""
        previous = self.state
        self._commit(previous, state, request)
        self._schedule(state, now, transition_s, now)
        return self.version

    def _commit(self, previous: EditState, state: EditState, request: dict) -> None:
        if self.store is not None:
            self.version = self.store.commit(self.avatar_id, previous, state, request)
        else:
            self.version += 1
        self.state = state

    def _schedule(self, state: EditState, at: float, duration: float, now: float) -> None:
        with self._lock:
            if at <= now:
                self._start(state, at, duration)
            else:
                heapq.heappush(self._pending, (at, next(self._seq), state, duration))

    def _start(self, state: EditState, at: float, duration: float) -> None:
        current = self._transition.at(at)
        self._transition = _Transition(at, at + duration, current, EditNumbers.of(state))

    # --- frame side (render thread) -------------------------------------------
    def numbers(self, t: float) -> EditNumbers:
        with self._lock:
            while self._pending and self._pending[0][0] <= t:
                at, _, state, duration = heapq.heappop(self._pending)
                self._start(state, at, duration)
            return self._transition.at(t)

    @staticmethod
    def apply(vector: np.ndarray, numbers: EditNumbers, level_db: float) -> np.ndarray:
        """This frame's motion with the edits: speaking style first, then the emotion on top."""
        scale = numbers.lip_scale * (1.0 - numbers.loudness_follow
                                     + numbers.loudness_follow * speech_style.loudness_scale(level_db))
        styled = speech_style.apply_style(vector, scale, dict(zip(_VISEMES, numbers.viseme_scales.tolist())))
        out = styled + emotions.emotion_delta(styled, numbers.emotion)
        out[PARAM_INDEX["gaze_x"]] += numbers.gaze[0]
        out[PARAM_INDEX["gaze_y"]] += numbers.gaze[1]
        return out
