"""One benchmark session: speak the stimulus into a real peer connection, record what the avatar shows.

Only the mouth box of each received frame is kept (luma, a few KB), so many sessions over
many seconds fit in memory; the analysis runs after the call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCPeerConnection

from avatar_rt.bench.client import BenchError, Microphone, connect, http_json
from avatar_rt.bench.stimulus import Stimulus
from avatar_rt.rtc_frames import received_frames
from avatar_rt.server.rtp_audio import PacketClock, receiver_of


@dataclass
class ReceivedFrame:
    delivered: float  # when aiortc handed the decoded frame to us (monotonic)
    complete: float | None  # when its last RTP packet arrived (before the client's jitter buffer and decoder)
    pts: int  # 90 kHz RTP timestamp
    mouth: np.ndarray  # luma of the mouth box, uint8


@dataclass
class CallRecord:
    session_id: str = ""
    mouth_box: list[int] = field(default_factory=list)
    answered: float = 0.0
    frames: list[ReceivedFrame] = field(default_factory=list)
    mic: Microphone | None = None
    onsets_48k: list[int] = field(default_factory=list)
    error: str | None = None

    def onset_times(self) -> list[float]:
        """When each onset left this client (monotonic), for the onsets that were sent."""
        times = [self.mic.left_at(s) for s in self.onsets_48k] if self.mic else []
        return [t for t in times if t is not None]


class BenchCall:
    def __init__(self, base_url: str, stimulus: Stimulus, net_jitter_ms: float = 0.0, seed: int = 0):
        self.base_url = base_url
        self.record = CallRecord(onsets_48k=[int(round(t * 48000)) for t in stimulus.onsets_s])
        self.mic = Microphone(stimulus.pcm_48k(), net_jitter_ms, seed)
        self.record.mic = self.mic
        self.pc = RTCPeerConnection()
        self._tasks: list[asyncio.Task] = []

    async def _read_video(self, track, clock: PacketClock | None) -> None:
        x0, y0, x1, y1 = self.record.mouth_box
        async for frame in received_frames(track):
            delivered = time.monotonic()
            plane = frame.planes[0]
            luma = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            self.record.frames.append(ReceivedFrame(delivered, clock.arrival(frame.pts) if clock else None,
                                                    int(frame.pts), luma[y0:y1, x0:x1].copy()))

    async def _drain(self, track) -> None:
        """The avatar's voice is read (an unread track buffers without bound) but not measured."""
        async for _ in received_frames(track):
            pass

    async def start(self, http) -> None:
        self.pc.addTrack(self.mic)
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track) -> None:
            if track.kind == "video":
                receiver = receiver_of(self.pc, track)
                clock = PacketClock(receiver) if receiver is not None else None
                self._tasks.append(asyncio.ensure_future(self._wait_box_then_read(track, clock)))
            else:
                self._tasks.append(asyncio.ensure_future(self._drain(track)))

        self._box_known = asyncio.Event()
        created, self.record.answered = await connect(http, self.base_url, self.pc)
        self.record.session_id = created["session_id"]
        box = created.get("avatar", {}).get("mouth_box")
        size = created.get("size") or 512
        self.record.mouth_box = [int(v) for v in box] if box else [size // 3, size // 2, 2 * size // 3, 3 * size // 4]
        self._box_known.set()

    async def _wait_box_then_read(self, track, clock) -> None:
        await self._box_known.wait()  # the track event comes before the offer's answer tells the box
        await self._read_video(track, clock)

    async def stop(self, http) -> None:
        if self.record.session_id:
            try:
                await http_json(http, "DELETE", f"{self.base_url}/v1/sessions/{self.record.session_id}")
            except BenchError:
                pass
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
