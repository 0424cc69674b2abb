"""Audio ingress: any decoded audio (aiortc gives 48 kHz stereo s16, 960 samples)
→ 16 kHz mono int16 in fixed 10 ms chunks.

The resampler's output size varies frame to frame (filter delay, rate ratio), so
a re-chunker turns it into exact 160-sample chunks for the VAD and the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import av
import numpy as np

SAMPLE_RATE = 16_000
CHUNK_SAMPLES = SAMPLE_RATE // 100  # 10 ms


@dataclass(frozen=True)
class AudioChunk:
    samples: np.ndarray  # (160,) int16, 16 kHz mono
    arrival: float  # time.monotonic() when the frame carrying it was received


class Rechunker:
    """Accumulates variable-length sample blocks; yields fixed-size chunks."""

    def __init__(self, chunk: int = CHUNK_SAMPLES):
        self.chunk = chunk
        self._buf = np.zeros(0, dtype=np.int16)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        buf = np.concatenate([self._buf, samples.astype(np.int16, copy=False)]) if len(self._buf) else samples
        n = len(buf) // self.chunk
        out = [buf[i * self.chunk:(i + 1) * self.chunk].copy() for i in range(n)]
        self._buf = buf[n * self.chunk:].astype(np.int16, copy=True)
        return out


class AudioIngress:
    """Converts received frames of any rate and layout to 10 ms chunks of 16 kHz mono."""

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._source_format: tuple | None = None
        self._rechunker = Rechunker()

    def push_frame(self, frame: av.AudioFrame, arrival: float | None = None) -> list[AudioChunk]:
        arrival = time.monotonic() if arrival is None else arrival
        fmt = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or fmt != self._source_format:
            # A new stream (or a renegotiated one): start a fresh resampler.
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            self._source_format = fmt
        chunks = []
        for out in self._resampler.resample(frame):
            pcm = out.to_ndarray().reshape(-1)
            chunks.extend(AudioChunk(c, arrival) for c in self._rechunker.push(pcm))
        return chunks

    def push_pcm(self, pcm: np.ndarray, sample_rate: int, arrival: float | None = None) -> list[AudioChunk]:
        """Raw PCM (int16 or float in [-1, 1], mono or (n, channels)) from an agent or a file."""
        pcm = np.asarray(pcm)
        if pcm.dtype.kind == "f":
            pcm = np.clip(np.nan_to_num(pcm), -1.0, 1.0) * 32767.0
        pcm = pcm.astype(np.int16)
        layout = "mono" if pcm.ndim == 1 or pcm.shape[1] == 1 else "stereo"
        interleaved = pcm.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout=layout)
        frame.sample_rate = sample_rate
        return self.push_frame(frame, arrival)
