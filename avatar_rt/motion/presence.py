"""How the face waits while a voice agent is not speaking: listening and thinking look different.

A voice agent declares its state (idle / listening / thinking / speaking; avatar_rt.agent).
Between replies the face must not freeze (invariant 3) and should show which it is:

* **listening** — attention on the viewer: gaze held on the camera with small
  fixational shifts, brows a touch raised, a slight tilt, and small nods every few
  seconds (back-channel, as a listener gives);
* **thinking** — gaze averted up and to one side (it drifts between sides), a light
  brow furrow, lips gently pressed, the head still and tilted back a little;
* **idle / speaking** — nothing added (speech and the behaviour model drive the face).

Each state's layer fades in and out over ~0.3 s, so a change never jumps. Additive on
the motion vector, after the behaviour and idle layers and before the edits, so an
emotion edit still composes on top. Deterministic in the frame index and a seed.
"""

from __future__ import annotations

import math

import numpy as np

from avatar_rt.motion.params import MotionParams

FADE_S = 0.3
NOD_RAD = 0.045  # a small nod: ~2.5°
NOD_S = 0.7  # down and back up


class AgentPresence:
    def __init__(self, fps: float, *, seed: int = 0):
        self.fps = fps
        self._rng = np.random.default_rng(seed + 7919)
        self._weight = {"listening": 0.0, "thinking": 0.0}
        self._next_nod_s = 1.5
        self._nod_start_s = -10.0
        self._gaze_target = np.zeros(2)
        self._gaze = np.zeros(2)
        self._next_saccade_s = 0.0
        self._think_side = 1.0
        self._next_side_s = 0.0

    def _fade(self, state: str | None) -> None:
        k = 1.0 - math.exp(-1.0 / (self.fps * FADE_S / 3))  # ~95 % of the way in FADE_S
        for name in self._weight:
            target = 1.0 if state == name else 0.0
            self._weight[name] += k * (target - self._weight[name])

    def _nod(self, t: float) -> float:
        if t >= self._next_nod_s:
            self._nod_start_s = t
            self._next_nod_s = t + float(self._rng.uniform(2.0, 5.0))
        dt = t - self._nod_start_s
        return NOD_RAD * math.sin(math.pi * dt / NOD_S) ** 2 if 0 <= dt < NOD_S else 0.0

    def _listening_gaze(self, t: float) -> np.ndarray:
        # Fixational shifts: a new point near the camera every 0.8-2.5 s, reached in ~100 ms.
        if t >= self._next_saccade_s:
            self._gaze_target = self._rng.normal(0.0, [0.06, 0.04])
            self._next_saccade_s = t + float(self._rng.uniform(0.8, 2.5))
        self._gaze += 0.4 * (self._gaze_target - self._gaze)
        return self._gaze

    def apply(self, params: MotionParams, frame_index: int, state: str | None) -> MotionParams:
        self._fade(state)
        t = frame_index / self.fps
        listen, think = self._weight["listening"], self._weight["thinking"]
        if listen > 1e-3:
            gaze = self._listening_gaze(t)
            params.head_pitch += listen * self._nod(t)
            params.head_roll += listen * 0.03
            params.brow_raise_l += listen * 0.12
            params.brow_raise_r += listen * 0.12
            params.mouth_corner_lift += listen * 0.08
            # Eyes come back to the viewer: whatever gaze the layers below set is pulled towards the camera.
            params.gaze_x = (1 - listen) * params.gaze_x + listen * float(gaze[0])
            params.gaze_y = (1 - listen) * params.gaze_y + listen * float(gaze[1])
        if think > 1e-3:
            if t >= self._next_side_s:
                self._think_side = -self._think_side if self._next_side_s > 0 else float(self._rng.choice([-1, 1]))
                self._next_side_s = t + float(self._rng.uniform(2.5, 5.0))
            side = self._think_side
            params.gaze_x += think * 0.45 * side
            params.gaze_y += think * -0.45
            params.brow_furrow += think * 0.25
            params.lip_press += think * 0.2
            params.head_pitch += think * -0.05  # chin up a little
            params.head_roll += think * -0.04 * side
            params.head_yaw += think * 0.04 * side
        return params
