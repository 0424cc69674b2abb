"""Pipecat adapter: an avatar_rt face for a Pipecat bot, as a frame processor placed after the TTS.

    pipeline = Pipeline([transport.input(), stt, context_aggregator.user(), llm, tts,
                         AvatarRtVideoService(base_url="http://gpu-box:8080"),
                         transport.output(), context_aggregator.assistant()])

What it does with the frames that flow through it:

* `TTSStartedFrame` … `TTSAudioRawFrame`s … `TTSStoppedFrame` become one segment on the
  session's agent socket (the TTS's own rate, declared with its first audio); the TTS
  audio itself is *not* passed on: the avatar's lip-synced voice replaces it;
* `InterruptionFrame` (the user talked over the bot) is a `clear`: queued audio is dropped
  and the mouth closes from the next frame;
* downstream it emits the avatar's video as `OutputImageRawFrame` (RGB) and its voice as
  `TTSAudioRawFrame` (16 kHz mono, silent stretches skipped), both from the session's WHEP
  stream, so the output transport sends them together;
* everything else passes through unchanged.

`finished` collects every `playback.finished` (id, position_s, interrupted), and
`on_playback_finished`, if set, is awaited with each, so a bot can keep its history true.
Install with `pip install 'avatar-rt[pipecat]'` in the bot's environment (the engine
runs as its own server; see avatar_rt/adapters/remote.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from avatar_rt.adapters.remote import VOICE_RATE, RemoteAvatar
from avatar_rt.client import AvatarApiError, PlaybackFinished


class AvatarRtVideoService(FrameProcessor):
    def __init__(self, *, base_url: str, avatar_id: str | None = None,
                 on_playback_finished: Callable[[PlaybackFinished], Awaitable[None]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self._avatar = RemoteAvatar(base_url, avatar_id=avatar_id)
        self._segment: str | None = None
        self._events_task: asyncio.Task | None = None
        self._started = False
        self.finished: list[PlaybackFinished] = []
        self.on_playback_finished = on_playback_finished

    @property
    def session_id(self) -> str | None:
        return self._avatar.session.session_id if self._avatar.session else None

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)  # downstream processors must start before our frames reach them
            await self._start()
            return
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop()
        elif isinstance(frame, TTSStartedFrame):
            await self._open_segment(frame.context_id)
        elif isinstance(frame, TTSAudioRawFrame):
            await self._push_audio(frame)
            return  # the avatar's own, lip-synced voice goes out instead
        elif isinstance(frame, TTSStoppedFrame):
            await self._close_segment()
        elif isinstance(frame, InterruptionFrame):
            self._segment = None
            if self._started:
                await self._avatar.agent.clear()
        await self.push_frame(frame, direction)

    async def _start(self) -> None:
        if self._started:
            return
        try:
            await self._avatar.start(self._on_video, self._on_audio)
        except (AvatarApiError, OSError) as exc:
            await self.push_error(error_msg=f"avatar_rt: cannot start the avatar session: {exc}", exception=exc)
            return
        self._started = True
        self._events_task = self.create_task(self._watch_events())

    async def _stop(self) -> None:
        if self._events_task is not None:
            await self.cancel_task(self._events_task)
            self._events_task = None
        if self._started:
            self._started = False
            await self._avatar.stop()

    async def _open_segment(self, context_id: str | None) -> None:
        if not self._started:
            return
        if self._segment is not None:
            await self._avatar.agent.end_segment(self._segment)
        self._segment = f"{context_id or 'tts'}-{uuid.uuid4().hex[:8]}"
        await self._avatar.agent.start_segment(self._segment)

    async def _push_audio(self, frame: TTSAudioRawFrame) -> None:
        if not self._started:
            return
        await self._avatar.ensure_rate(frame.sample_rate)
        if self._segment is None:  # a TTS that sends no TTSStartedFrame
            await self._open_segment(frame.context_id)
        pcm = np.frombuffer(frame.audio, dtype=np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels)[:, 0].copy()
        await self._avatar.agent.push_audio(pcm)

    async def _close_segment(self) -> None:
        if self._started and self._segment is not None:
            await self._avatar.agent.end_segment(self._segment)
        self._segment = None

    async def _watch_events(self) -> None:
        async for event in self._avatar.agent.events():
            if isinstance(event, PlaybackFinished):
                self.finished.append(event)
                if self.on_playback_finished is not None:
                    await self.on_playback_finished(event)

    async def _on_video(self, rgb: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        await self.push_frame(OutputImageRawFrame(image=rgb.tobytes(), size=(width, height), format="RGB"))

    async def _on_audio(self, pcm: np.ndarray) -> None:
        if pcm.any():
            await self.push_frame(TTSAudioRawFrame(audio=pcm.tobytes(), sample_rate=VOICE_RATE, num_channels=1))
