"""The engine's viewer (avatar_rt.rtc_frames.add_viewer_transceivers): aiortc's jitter buffers release a frame's
audio with the frame, so a client that passes media on as it arrives (the adapters) keeps the voice on the lips."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from avatar_rt.rtc_frames import add_viewer_transceivers

VIDEO_PACKETS_PER_FRAME = 4


def release_ticks(receivers) -> tuple[dict[int, int], dict[int, int]]:
    """Feed 20 frames in the engine's pattern (each 40 ms tick: the frame's two 20 ms Opus packets, then its
    VP8 packets) through the receivers' own jitter buffers; the tick at which each frame's video, and the
    last of its audio, left them."""
    video_buffer = receivers["video"]._RTCRtpReceiver__jitter_buffer
    audio_buffer = receivers["audio"]._RTCRtpReceiver__jitter_buffer
    video_out: dict[int, int] = {}
    audio_out: dict[int, int] = {}
    video_seq = audio_seq = 0
    for tick in range(20):
        for half in range(2):
            packet = RtpPacket(payload_type=111, sequence_number=audio_seq, timestamp=(2 * tick + half) * 960)
            packet._data = b"\0"
            audio_seq += 1
            _, frame = audio_buffer.add(packet)
            if frame is not None:
                audio_out[frame.timestamp // 1920] = tick  # the later half of a frame's audio overwrites
        for _ in range(VIDEO_PACKETS_PER_FRAME):
            packet = RtpPacket(payload_type=96, sequence_number=video_seq, timestamp=tick * 3600)
            packet._data = b"\0"
            video_seq += 1
            _, frame = video_buffer.add(packet)
            if frame is not None:
                video_out[frame.timestamp // 3600] = tick
    return video_out, audio_out


def test_a_frames_audio_leaves_aiortc_with_the_frame():
    async def main():
        pc = RTCPeerConnection()
        try:
            video_out, audio_out = release_ticks(add_viewer_transceivers(pc))
            # aiortc's default (prefetch 4) would hold the audio one frame (40 ms) longer than the video.
            default_video, default_audio = release_ticks(add_viewer_transceivers(RTCPeerConnection(),
                                                                                 audio_prefetch=4))
        finally:
            await pc.close()
        return video_out, audio_out, default_video, default_audio

    video_out, audio_out, default_video, default_audio = asyncio.run(main())
    frames = [n for n in range(2, 15)]
    assert all(n in video_out and n in audio_out for n in frames), (video_out, audio_out)
    assert [audio_out[n] - video_out[n] for n in frames] == [0] * len(frames)
    # The check can tell: with aiortc's own audio buffer the voice leaves a frame later than its lips.
    assert [default_audio[n] - default_video[n] for n in frames] == [1] * len(frames)
