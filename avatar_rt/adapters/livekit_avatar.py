"""LiveKit Agents adapter: avatar_rt as the `VideoGenerator` of LiveKit's avatar runner.

An agent using LiveKit's avatar data-stream protocol sends its TTS audio to an avatar
worker; the worker runs `livekit.agents.voice.avatar.AvatarRunner(room, audio_recv=
DataStreamAudioReceiver(room), video_gen=AvatarRtVideoGenerator(...))`. This class is that
`video_gen`, with the avatar rendered by an avatar_rt server:

* `push_audio(rtc.AudioFrame)` appends to the current segment on the session's agent
  socket (a new segment begins with the first frame after the previous `AudioSegmentEnd`);
  `push_audio(AudioSegmentEnd())` ends it;
* `clear_buffer()` is the barge-in (`clear`); the runner reports that playback as
  interrupted itself, so no `AudioSegmentEnd` follows for it;
* iterating yields `rtc.VideoFrame` (RGB24, every frame the engine sends), `rtc.AudioFrame`
  (the avatar's lip-synced voice, 16 kHz mono, while a segment plays) and `AudioSegmentEnd`
  once a segment has played out — from which the runner reports `playback_finished`.

Call `await start()` before handing it to the runner and `await aclose()` after.
Install the LiveKit packages in the worker's environment (`livekit-agents`; see
avatar_rt/adapters/remote.py for why the engine runs as its own server).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator

from avatar_rt.adapters.remote import VOICE_RATE, RemoteAvatar
from avatar_rt.client import PlaybackFinished, PlaybackStarted

# The engine's voice arrives over WebRTC a little after its playback events: keep passing audio this long
# after a segment's finished so its last word is not cut.
AUDIO_TAIL_S = 0.3
MAX_QUEUED = 500  # output items (≈ 10 s of 20 ms audio and video); the oldest are dropped past it


class AvatarRtVideoGenerator(VideoGenerator):
    def __init__(self, base_url: str, *, avatar_id: str | None = None):
        self._avatar = RemoteAvatar(base_url, avatar_id=avatar_id)
        self._out: asyncio.Queue[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd] = asyncio.Queue()
        self._segment: str | None = None
        self._playing: str | None = None  # the segment the engine is playing now
        self._audio_until = 0.0  # monotonic time until which the engine's voice is passed on
        self._events_task: asyncio.Task | None = None
        self.finished: list[PlaybackFinished] = []

    @property
    def session_id(self) -> str | None:
        return self._avatar.session.session_id if self._avatar.session else None

    async def start(self) -> None:
        await self._avatar.start(self._on_video, self._on_audio)
        self._events_task = asyncio.create_task(self._watch_events())

    async def aclose(self) -> None:
        if self._events_task is not None:
            self._events_task.cancel()
        await self._avatar.stop()

    # --- VideoGenerator ---------------------------------------------------------------------------
    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        agent = self._avatar.agent
        if isinstance(frame, AudioSegmentEnd):
            if self._segment is not None:
                await agent.end_segment(self._segment)
                self._segment = None
            return
        await self._avatar.ensure_rate(frame.sample_rate)
        if self._segment is None:
            self._segment = await agent.start_segment(f"lk-{uuid.uuid4().hex[:10]}")
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels)[:, 0].copy()
        await agent.push_audio(pcm)

    async def clear_buffer(self) -> None:
        self._segment = None
        self._playing = None
        self._audio_until = 0.0
        await self._avatar.agent.clear()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        while True:
            yield await self._out.get()

    # --- from the engine --------------------------------------------------------------------------
    def _put(self, item) -> None:
        while self._out.qsize() >= MAX_QUEUED:  # a stalled consumer costs old frames, never memory
            self._out.get_nowait()
        self._out.put_nowait(item)

    async def _watch_events(self) -> None:
        async for event in self._avatar.agent.events():
            if isinstance(event, PlaybackStarted):
                self._playing = event.id
                self._audio_until = float("inf")
            elif isinstance(event, PlaybackFinished):
                self.finished.append(event)
                if event.id == self._playing:
                    self._playing = None
                    self._audio_until = time.monotonic() + AUDIO_TAIL_S
                if not event.interrupted:
                    # After the tail of its audio: the runner reports playback_finished on it.
                    asyncio.get_running_loop().call_later(AUDIO_TAIL_S, self._put, AudioSegmentEnd())

    async def _on_video(self, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        self._put(rtc.VideoFrame(width, height, rtc.VideoBufferType.RGB24, rgb.tobytes()))

    async def _on_audio(self, pcm: np.ndarray) -> None:
        if time.monotonic() < self._audio_until:
            self._put(rtc.AudioFrame(data=pcm.tobytes(), sample_rate=VOICE_RATE, num_channels=1,
                                     samples_per_channel=len(pcm)))
