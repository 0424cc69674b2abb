"""An avatar_rt session driven from another process: the agent socket in, a WHEP viewer out.

What the framework adapters (Pipecat, LiveKit Agents) share. The engine runs as its own
server (it may be on a GPU machine elsewhere); the adapter lives in the agent's process,
pushes TTS audio as segments through `avatar_rt.client`, and receives the avatar's video
and its lip-synced voice over WHEP with aiortc. Nothing here imports the engine itself,
so an agent's environment needs only aiohttp, aiortc and numpy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription

from avatar_rt.client import AgentConnection, AvatarApiError, AvatarClient, SessionInfo
from avatar_rt.rtc_frames import add_viewer_transceivers, received_frames

log = logging.getLogger(__name__)

VOICE_RATE = 16_000  # the engine's voice: its pipeline rate, mono

VideoSink = Callable[[np.ndarray], Awaitable[None]]  # (h, w, 3) uint8 RGB
AudioSink = Callable[[np.ndarray], Awaitable[None]]  # int16 mono at VOICE_RATE


class RemoteAvatar:
    def __init__(self, base_url: str, *, avatar_id: str | None = None, sample_rate: int | None = None):
        self.client = AvatarClient(base_url)
        self.avatar_id = avatar_id
        self.sample_rate = sample_rate
        self.session: SessionInfo | None = None
        self.agent: AgentConnection | None = None
        self._pc: RTCPeerConnection | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self, on_video: VideoSink, on_audio: AudioSink) -> None:
        """Create the session, attach as its agent, and start watching it over WHEP."""
        self.session = await self.client.create_session(self.avatar_id)
        self.agent = await self.client.connect_agent(self.session.session_id, sample_rate=self.sample_rate)
        pc = self._pc = RTCPeerConnection()
        add_viewer_transceivers(pc)  # the voice leaves aiortc's buffers with its lips (rtc_frames)
        pc.on("track", lambda track: self._tasks.append(asyncio.ensure_future(
            self._read_video(track, on_video) if track.kind == "video" else self._read_audio(track, on_audio))))
        await pc.setLocalDescription(await pc.createOffer())
        url = f"{self.client.base_url}/v1/sessions/{self.session.session_id}/whep"
        async with self.client.http.post(url, data=pc.localDescription.sdp,
                                         headers={"Content-Type": "application/sdp"}) as resp:
            if resp.status != 201:
                body = await resp.json(content_type=None)
                err = (body or {}).get("error", {})
                raise AvatarApiError(err.get("code", "whep_failed"), err.get("message", str(resp.status)), resp.status)
            answer = await resp.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def ensure_rate(self, sample_rate: int) -> None:
        """Declare the TTS's rate the first time its audio is seen (the server keeps one rate per session)."""
        if self.agent is not None and self.agent.sample_rate is None:
            await self.agent.configure(sample_rate)

    @staticmethod
    async def _read_video(track, sink: VideoSink) -> None:
        async for frame in received_frames(track):
            await sink(frame.to_ndarray(format="rgb24"))

    @staticmethod
    async def _read_audio(track, sink: AudioSink) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=VOICE_RATE)
        async for frame in received_frames(track):
            for out in resampler.resample(frame):
                await sink(out.to_ndarray().reshape(-1).astype(np.int16))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.agent is not None:
            with contextlib.suppress(Exception):
                await self.agent.close()
        if self._pc is not None:
            await self._pc.close()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.client.delete_session(self.session.session_id)
        await self.client.close()
