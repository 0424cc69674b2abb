"""Idle behaviour: blinks, breathing and a little head sway, so video never looks frozen.

Deterministic in the frame index and a seed, so an offline render is reproducible.
"""

from __future__ import annotations

import math

import numpy as np

from avatar_rt.motion.params import MotionParams

BLINK_CLOSE_S = 0.07
BLINK_OPEN_S = 0.11


class IdleMotion:
    def __init__(self, fps: float, *, seed: int = 0, blink_interval_s: float = 3.5, sway: float = 1.0):
        self.fps = fps
        self.sway = sway
        self.blink_rate = 1.0  # multiplier on how often blinks come; 0 stops them
        # False while a motion model (lip sync stage B) drives head turns and blinks: idle then only breathes.
        self.head_and_blinks = True
        self._rng = np.random.default_rng(seed)
        self._phases = self._rng.uniform(0, 2 * math.pi, size=6)
        self._blink_interval_s = blink_interval_s
        self._next_blink_s = self._draw_interval(first=True)

    def _draw_interval(self, first: bool = False) -> float:
        # Human blinks come every 2–6 s, irregularly.
        gap = float(np.clip(self._rng.exponential(self._blink_interval_s - 1.5) + 1.5, 1.5, 8.0))
        if self.blink_rate <= 1e-3:
            return 1e9
        return (1.0 if first else 0.0) + gap / self.blink_rate

    def _blink(self, t: float) -> float:
        while t > self._next_blink_s + BLINK_CLOSE_S + BLINK_OPEN_S:
            self._next_blink_s += self._draw_interval()
        dt = t - self._next_blink_s
        if dt < 0:
            return 0.0
        if dt < BLINK_CLOSE_S:
            return dt / BLINK_CLOSE_S
        return max(0.0, 1.0 - (dt - BLINK_CLOSE_S) / BLINK_OPEN_S)

    def apply(self, params: MotionParams, frame_index: int, speaking: bool) -> MotionParams:
        t = frame_index / self.fps
        p = self._phases
        amount = self.sway * (1.6 if speaking else 1.0)
        params.head_tx += amount * 0.010 * math.sin(2 * math.pi * 0.05 * t + p[3])
        # Breathing: a slow rise and fall.
        params.head_ty += amount * 0.008 * math.sin(2 * math.pi * 0.25 * t + p[4])
        if not self.head_and_blinks:
            return params
        params.head_yaw += amount * 0.012 * math.sin(2 * math.pi * 0.11 * t + p[0])
        params.head_pitch += amount * 0.010 * math.sin(2 * math.pi * 0.17 * t + p[1])
        params.head_roll += amount * 0.008 * math.sin(2 * math.pi * 0.07 * t + p[2])
        blink = self._blink(t)
        params.blink_l = max(params.blink_l, blink)
        params.blink_r = max(params.blink_r, blink)
        return params
