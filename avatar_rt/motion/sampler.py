"""The flow sampler of stage B: integrates a velocity network from noise to a sample.

Kept apart from the network on purpose: the network only answers "which way from
here" (a velocity at a point x and time t, given a context); how many steps to take
is this object's setting. The teacher is sampled with many steps, the distilled
student with two, by the same code.

Rectified flow convention (training in export/lipsync/stage_b.py uses the same):
x(0) is Gaussian noise, x(1) a data sample, and along the straight path
x(t) = (1 − t)·x0 + t·x1 the network learns v = x1 − x0. Euler steps on the grid
`time_grid(steps)` carry x(0) to x(1).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# velocity(x (N, D), t (N, 1), context (N, C)) → (N, D)
Velocity = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def time_grid(steps: int) -> np.ndarray:
    """The `steps + 1` times at which an Euler sampler evaluates the network (0 … 1, uniform)."""
    if steps < 1:
        raise ValueError(f"a flow sampler needs at least one step, got {steps}")
    return np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)


class FlowSampler:
    """Euler integration of `velocity` from noise (t = 0) to data (t = 1) in `steps` steps."""

    def __init__(self, velocity: Velocity, steps: int):
        self.velocity = velocity
        self.steps = steps  # validated by the setter

    @property
    def steps(self) -> int:
        return self._steps

    @steps.setter
    def steps(self, value: int) -> None:
        self._grid = time_grid(int(value))
        self._steps = int(value)

    def sample(self, context: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """One sample per row of `context` (N, C), starting from `noise` (N, D)."""
        x = np.asarray(noise, np.float32).copy()
        t = np.empty((len(x), 1), np.float32)
        for t0, t1 in zip(self._grid[:-1], self._grid[1:]):
            t.fill(t0)
            x += (t1 - t0) * self.velocity(x, t, context)
        return x
