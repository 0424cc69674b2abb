"""Outgoing media tracks fed by the session's clock.

The session's frame loop paces everything to the wall clock; these tracks only
hand over what it produced. Their queues are small and drop the oldest item, so
a slow consumer costs frames, never latency (invariant 2).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatar_rt.audio.ingress import SAMPLE_RATE, Rechunker
from avatar_rt.pipeline import FrameTimings

VIDEO_CLOCK = 90_000


def put_dropping_oldest(queue: asyncio.Queue, item) -> bool:
    """Put without blocking; if full, discard the oldest item first. True if something was dropped."""
    dropped = False
    while queue.full():
        queue.get_nowait()
        dropped = True
    queue.put_nowait(item)
    return dropped


class PipelineVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, fps: float, on_sent: Callable[[FrameTimings], None] | None = None, maxsize: int = 2,
                 on_encoded: Callable[[FrameTimings], None] | None = None):
        super().__init__()
        self.fps = fps
        self._queue: asyncio.Queue[tuple[av.VideoFrame, FrameTimings]] = asyncio.Queue(maxsize=maxsize)
        self._on_sent = on_sent
        self._on_encoded = on_encoded
        # aiortc's sender encodes and sends a frame, then asks for the next: that ask stamps the last one encoded.
        self._in_transport: FrameTimings | None = None
        self.dropped = 0

    @staticmethod
    def make_frame(image: np.ndarray, index: int, fps: float) -> av.VideoFrame:
        """BGR image → encoder-ready frame; called on the render thread to keep the event loop free."""
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = int(round(index * VIDEO_CLOCK / fps))
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

    def put(self, frame: av.VideoFrame, timings: FrameTimings) -> None:
        if put_dropping_oldest(self._queue, (frame, timings)):
            self.dropped += 1

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._in_transport is not None:
            self._in_transport.encoded = time.monotonic()
            if self._on_encoded is not None:
                self._on_encoded(self._in_transport)
            self._in_transport = None
        frame, timings = await self._queue.get()
        timings.sent = time.monotonic()
        if self._on_sent is not None:
            self._on_sent(timings)
        self._in_transport = timings
        return frame


class PipelineAudioTrack(MediaStreamTrack):
    """The avatar's voice: each video frame's own audio slice, in order, on the same clock.

    Slices are re-cut into 20 ms frames: aiortc sends all packets of one frame
    under one RTP timestamp, so a frame must hold exactly one Opus packet's worth.
    """

    kind = "audio"
    FRAME_SAMPLES = SAMPLE_RATE // 50

    def __init__(self, maxsize: int = 50):
        super().__init__()
        self._queue: asyncio.Queue[av.AudioFrame] = asyncio.Queue(maxsize=maxsize)
        self._rechunker = Rechunker(self.FRAME_SAMPLES)
        self._next_pts = 0
        self.dropped = 0

    def put(self, pcm: np.ndarray) -> None:
        for chunk in self._rechunker.push(pcm):
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._next_pts
            frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
            self._next_pts += len(chunk)
            if put_dropping_oldest(self._queue, frame):
                self.dropped += 1

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._queue.get()
