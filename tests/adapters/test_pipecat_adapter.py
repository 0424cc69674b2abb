"""The Pipecat adapter inside a real Pipecat pipeline (pipecat-ai's own test runner) against a real engine:
TTS frames in → the avatar's video and lip-synced voice out; an interruption cuts it off."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pipecat = pytest.importorskip("pipecat", reason="pipecat-ai is not installed: the adapter tests run in "
                              ".venv-adapters (scripts/test.sh makes it; pip install 'avatar-rt[pipecat]')")

from pipecat.frames.frames import (  # noqa: E402
    InterruptionFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402

from avatar_rt.adapters.pipecat_avatar import AvatarRtVideoService  # noqa: E402
from conftest import espeak  # noqa: E402


@pytest.fixture(scope="module")
def tts_24k(tmp_path_factory) -> bytes:
    pcm, rate = espeak("Your order shipped yesterday and should arrive on Tuesday.",
                       tmp_path_factory.mktemp("tts") / "a.wav")
    t = np.arange(int(len(pcm) * 24000 / rate)) * rate / 24000
    return np.interp(t, np.arange(len(pcm)), pcm.astype(np.float64)).astype(np.int16).tobytes()


def tts_frames(audio: bytes, rate: int = 24000, chunk_s: float = 0.2) -> list:
    step = int(rate * chunk_s) * 2
    return [TTSAudioRawFrame(audio=audio[i:i + step], sample_rate=rate, num_channels=1)
            for i in range(0, len(audio), step)]


def test_tts_audio_becomes_the_avatars_video_and_voice(engine, tts_24k):
    seconds = len(tts_24k) / 2 / 24000
    service = AvatarRtVideoService(base_url=engine.base_url)
    frames = [SleepFrame(1.0), TTSStartedFrame(context_id="c1"), *tts_frames(tts_24k), TTSStoppedFrame(context_id="c1"),
              SleepFrame(seconds + 1.5)]
    down, _ = asyncio.run(run_test(service, frames_to_send=frames, start_timeout=60))
    images = [f for f in down if isinstance(f, OutputImageRawFrame)]
    voice = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert len(images) > 10 and images[0].size == (512, 512) and images[0].format == "RGB"
    assert all(f.sample_rate == 16000 for f in voice), "the TTS's own 24 kHz frames were not passed on"
    heard = sum(f.num_frames for f in voice) / 16000
    assert heard > 0.6 * seconds, f"{heard:.2f} s of the avatar's voice for {seconds:.2f} s of TTS"
    assert any(isinstance(f, TTSStartedFrame) for f in down) and any(isinstance(f, TTSStoppedFrame) for f in down)
    (finished,) = service.finished
    assert not finished.interrupted and finished.position_s == pytest.approx(seconds, abs=0.02)


def test_an_interruption_cuts_the_avatar_off(engine, tts_24k):
    service = AvatarRtVideoService(base_url=engine.base_url)
    frames = [SleepFrame(1.0), TTSStartedFrame(context_id="c2"), *tts_frames(tts_24k), SleepFrame(1.2),
              InterruptionFrame(), SleepFrame(2.0)]
    asyncio.run(run_test(service, frames_to_send=frames, start_timeout=60))
    (finished,) = service.finished
    assert finished.interrupted and 0.5 < finished.position_s < 1.6, finished
