"""An input jitter buffer that holds only as much audio as the arrivals need.

The fixed buffer (jitter.py) starts playing at 60 ms and then keeps whatever level the
start-up and every later stall left it with: `avatar-rt bench` measured the newest sample of
each frame waiting 47-68 ms for its tick. This one watches how much audio is left over when
the frame clock takes its slice (the slack); when the smallest slack of the last two seconds
is more than `margin`, it trims the excess, 10 ms per tick and only where the audio is quiet,
so no speech is lost. An underrun (a slice the arrivals could not fill) raises the margin by
10 ms; ten seconds without one lowers it by 5 ms, down to `min_margin_ms`.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from avatar_rt.audio.ingress import CHUNK_SAMPLES, SAMPLE_RATE
from avatar_rt.audio.jitter import AudioJitterBuffer

QUIET_DBFS = -40.0  # trimmed audio must be below this: pauses and room noise, never speech


def _ms(ms: float) -> int:
    return int(SAMPLE_RATE * ms / 1000)


class AdaptiveJitterBuffer(AudioJitterBuffer):
    def __init__(self, *, start_ms: float = 60.0, max_ms: float = 240.0, margin_ms: float = 20.0,
                 min_margin_ms: float = 10.0, window_pops: int = 50, relax_pops: int = 250):
        super().__init__(target_ms=start_ms, max_ms=max_ms)
        self.margin = _ms(margin_ms)
        self.min_margin = _ms(min_margin_ms)
        self.window_pops = window_pops  # 2 s at 25 fps
        self.relax_pops = relax_pops  # 10 s at 25 fps
        self._slack: deque[int] = deque(maxlen=window_pops)
        self._since_underrun = 0
        self.trimmed_samples = 0

    def _quiet_head(self, n: int) -> bool:
        """Are the next n samples to play quiet?"""
        if self._level < n:
            return False
        head, need = [], n
        for chunk in self._chunks:
            part = chunk.samples[self._offset:] if not head else chunk.samples
            head.append(part[:need])
            need -= len(head[-1])
            if need <= 0:
                break
        x = np.concatenate(head).astype(np.float32) / 32768.0
        return 20.0 * np.log10(np.sqrt(np.mean(x * x)) + 1e-9) < QUIET_DBFS

    def pop(self, n: int) -> tuple[np.ndarray, float | None]:
        if self._playing:
            slack = self._level - n
            self._slack.append(slack)
            if slack < 0:  # this pop underruns: the arrivals need more headroom
                self.margin = min(self.max // 2, self.margin + _ms(10))
                self._since_underrun = 0
                self._slack.clear()
            else:
                self._since_underrun += 1
                if self._since_underrun % self.relax_pops == 0:
                    self.margin = max(self.min_margin, self.margin - _ms(5))
            # Refill to one slice plus the margin after an underrun (the base class waits for `target`).
            self.target = n + self.margin
            if (len(self._slack) == self.window_pops and min(self._slack) - self.margin >= CHUNK_SAMPLES
                    and self._quiet_head(CHUNK_SAMPLES)):
                self._take(CHUNK_SAMPLES)
                self.trimmed_samples += CHUNK_SAMPLES
                self._slack = deque((s - CHUNK_SAMPLES for s in self._slack), maxlen=self.window_pops)
        return super().pop(n)
