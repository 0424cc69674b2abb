"""What every client of the engine needs from aiortc: a receive-only viewer whose audio and video wait equally
long in aiortc's jitter buffers, and one loop that reads a received track to its end (the Python client's
adapters, the bench, the tests and benchmarks).

aiortc's receivers hold media before decoding it: video until the next frame's first packet shows the frame
complete (one frame, 40 ms at 25 fps), audio until four more packets have arrived (prefetch 4: 80 ms of 20 ms
Opus packets). A browser lines the two up again by RTP timestamps and RTCP sender reports; aiortc does not:
it hands each frame over when it leaves its buffer. So a viewer that passes media on as it comes (the
Pipecat and LiveKit adapters do) would put the voice 40 ms behind the lips. The engine sends each 40 ms
frame's audio as two 20 ms packets together with the frame, and with prefetch 1 a frame's audio leaves
aiortc when the next frame's audio arrives — with the next video frame, as the video does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger(__name__)

# aiortc releases an audio frame when the packet `prefetch` frames later arrives; 1 is the least it can do
# (a frame is known complete only when the next timestamp shows up).
MIN_PREFETCH = 1
# A viewer's: the engine's audio then leaves aiortc's buffer with its video frame (module docstring).
VIEWER_AUDIO_PREFETCH = 1


def set_audio_prefetch(receiver: RTCRtpReceiver, prefetch: int) -> bool:
    """Replace an audio receiver's jitter buffer by one holding `prefetch` packets; False if aiortc changed."""
    attr = "_RTCRtpReceiver__jitter_buffer"
    old = getattr(receiver, attr, None)
    # The receiver's own kind: its track only exists once the remote description has arrived.
    if not isinstance(old, JitterBuffer) or getattr(receiver, "_RTCRtpReceiver__kind", None) != "audio":
        log.warning("cannot shorten aiortc's audio jitter buffer (aiortc internals changed); keeping it")
        return False
    setattr(receiver, attr, JitterBuffer(capacity=old.capacity, prefetch=max(MIN_PREFETCH, prefetch)))
    return True


def add_viewer_transceivers(pc: RTCPeerConnection,
                            audio_prefetch: int = VIEWER_AUDIO_PREFETCH) -> dict[str, RTCRtpReceiver]:
    """Receive-only video and audio on `pc` (before its offer), audio held as long as video; the receivers."""
    video = pc.addTransceiver("video", direction="recvonly").receiver
    audio = pc.addTransceiver("audio", direction="recvonly").receiver
    set_audio_prefetch(audio, audio_prefetch)
    return {"video": video, "audio": audio}


async def received_frames(track) -> AsyncIterator:
    """Each frame `track.recv()` gives, until the track ends (aiortc raises MediaStreamError then)."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        yield frame
