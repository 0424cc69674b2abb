"""The LiveKit Agents adapter's VideoGenerator contract, in-process against livekit-agents and a real engine
(no LiveKit server is installable here): audio frames in → video, the avatar's voice and AudioSegmentEnd
out; clear_buffer cuts it off with no AudioSegmentEnd and no more of its audio."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("livekit.agents", reason="livekit-agents is not installed: the adapter tests run in "
                    ".venv-adapters (scripts/test.sh makes it)")

from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd, VideoGenerator  # noqa: E402

from avatar_rt.adapters.livekit_avatar import AvatarRtVideoGenerator  # noqa: E402
from conftest import espeak  # noqa: E402


@pytest.fixture(scope="module")
def tts_24k(tmp_path_factory) -> np.ndarray:
    pcm, rate = espeak("Let me check that order for you, one moment please.", tmp_path_factory.mktemp("tts") / "a.wav")
    t = np.arange(int(len(pcm) * 24000 / rate)) * rate / 24000
    return np.interp(t, np.arange(len(pcm)), pcm.astype(np.float64)).astype(np.int16)


def audio_frames(pcm: np.ndarray, rate: int = 24000, ms: int = 20) -> list[rtc.AudioFrame]:
    n = rate * ms // 1000
    return [rtc.AudioFrame(data=pcm[i:i + n].tobytes(), sample_rate=rate, num_channels=1,
                           samples_per_channel=len(pcm[i:i + n])) for i in range(0, len(pcm), n)]


async def collect(gen, log: list, stop: asyncio.Event) -> None:
    async for item in gen:
        log.append((time.monotonic(), item))
        if stop.is_set():
            return


def test_segments_play_and_end_and_clear_cuts_them_off(engine, tts_24k):
    seconds = len(tts_24k) / 24000

    async def run():
        gen = AvatarRtVideoGenerator(engine.base_url)
        assert isinstance(gen, VideoGenerator)
        await gen.start()
        log: list = []
        stop = asyncio.Event()
        reader = asyncio.create_task(collect(gen, log, stop))
        try:
            await asyncio.sleep(1.0)
            for frame in audio_frames(tts_24k):  # as LiveKit's DataStreamAudioReceiver delivers them
                await gen.push_audio(frame)
            await gen.push_audio(AudioSegmentEnd())
            deadline = time.monotonic() + seconds + 10
            while not any(isinstance(i, AudioSegmentEnd) for _, i in log) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            first_end = len(log)
            # Barge-in on a second reply.
            for frame in audio_frames(tts_24k):
                await gen.push_audio(frame)
            await asyncio.sleep(1.5)
            cleared_at = time.monotonic()
            await gen.clear_buffer()
            await asyncio.sleep(2.0)
        finally:
            stop.set()
            await gen.aclose()
            reader.cancel()
        return log, first_end, cleared_at, gen.finished

    log, first_end, cleared_at, finished = asyncio.run(run())
    items = [i for _, i in log]
    videos = [i for i in items if isinstance(i, rtc.VideoFrame)]
    assert len(videos) > 10 and (videos[0].width, videos[0].height) == (512, 512)
    ends = [k for k, i in enumerate(items) if isinstance(i, AudioSegmentEnd)]
    assert len(ends) == 1 and ends[0] < first_end, "one AudioSegmentEnd: for the reply played out, none for the cleared"
    voice = [i for i in items[:ends[0]] if isinstance(i, rtc.AudioFrame)]
    played = sum(f.samples_per_channel for f in voice) / 16000
    assert played == pytest.approx(seconds, abs=0.5), f"{played:.2f} s of voice for {seconds:.2f} s pushed"
    late_audio = [t for t, i in log if isinstance(i, rtc.AudioFrame) and t > cleared_at + 0.5]
    assert not late_audio, "no audio of the cleared reply after the clear (beyond transport delay)"
    assert [f.interrupted for f in finished] == [False, True]
    assert finished[0].position_s == pytest.approx(seconds, abs=0.02)
