"""Input jitter buffer: 10 ms chunks arrive in bursts; the media clock takes exact slices.

Bounded both ways (invariant 2): playout starts once `target_ms` is buffered; on
underrun the slice is padded with silence and the buffer refills to target; when
more than `max_ms` piles up (a stalled consumer, a burst), the oldest audio is
dropped back to target so latency cannot grow.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from avatar_rt.audio.ingress import SAMPLE_RATE, AudioChunk


class AudioJitterBuffer:
    def __init__(self, *, target_ms: float = 60.0, max_ms: float = 240.0):
        self.target = int(SAMPLE_RATE * target_ms / 1000)
        self.max = int(SAMPLE_RATE * max_ms / 1000)
        self._chunks: deque[AudioChunk] = deque()
        self._offset = 0  # samples already taken from the first chunk
        self._level = 0
        self._playing = False
        self.underruns = 0
        self.dropped_samples = 0
        self.last_arrival: float | None = None

    @property
    def level_samples(self) -> int:
        return self._level

    def short_of(self, n: int) -> bool:
        """Playing, but the next `n` samples have not all arrived: a pop now would underrun."""
        return self._playing and self._level < n

    def push(self, chunk: AudioChunk) -> None:
        self._chunks.append(chunk)
        self._level += len(chunk.samples)
        if self._level > self.max:
            self._drop(self._level - self.target)

    def _drop(self, n: int) -> None:
        self.dropped_samples += n
        self._take(n)

    def _take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0 and self._chunks:
            first = self._chunks[0]
            avail = len(first.samples) - self._offset
            k = min(avail, n)
            parts.append(first.samples[self._offset:self._offset + k])
            self.last_arrival = first.arrival
            self._offset += k
            n -= k
            self._level -= k
            if self._offset == len(first.samples):
                self._chunks.popleft()
                self._offset = 0
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def pop(self, n: int) -> tuple[np.ndarray, float | None]:
        """Exactly `n` samples (silence-padded) and the arrival time of the newest real sample in them."""
        if not self._playing:
            if self._level < self.target:
                return np.zeros(n, dtype=np.int16), None
            self._playing = True
        if self._level < n:
            self.underruns += 1
            self._playing = False
        got = self._take(min(n, self._level))
        arrival = self.last_arrival if len(got) else None
        if len(got) < n:
            got = np.concatenate([got, np.zeros(n - len(got), dtype=np.int16)])
        return got, arrival
