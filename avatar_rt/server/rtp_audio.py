"""The received audio's path inside aiortc: when each RTP packet arrived, and how long aiortc holds it.

aiortc decodes audio on a thread and hands frames over with the RTP timestamp as pts, but
not when the packet arrived; `PacketClock` taps the receiver to remember that, so the
ingress stage (packet → decoded chunk) can be measured rather than guessed.

aiortc's audio receiver also keeps its own jitter buffer that releases a packet only once
four more have arrived (prefetch 4: 80 ms of 20 ms Opus packets) — in front of the
session's own jitter buffer, which already absorbs arrival jitter and is the one that is
bounded and measured. `avatar_rt.rtc_frames.set_audio_prefetch` shortens it.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from aiortc import RTCRtpReceiver

_REMEMBERED = 64  # frames: over a second of audio or video, far beyond any frame still in flight
# What sessions use: aiortc's 4 (80 ms) sat in front of the session's own jitter buffer, which is the one that
# absorbs arrival jitter (bounded, adaptive, measured); 1 leaves aiortc only re-ordering within a packet.
AUDIO_PREFETCH = 1


class PacketClock:
    """Arrival time (time.monotonic) of the last received RTP packet of each frame of one receiver, by RTP
    timestamp (a decoded frame's pts): when the frame was complete."""

    def __init__(self, receiver: RTCRtpReceiver):
        self._arrivals: OrderedDict[int, float] = OrderedDict()
        self._origin: int | None = None
        handle = receiver._handle_rtp_packet

        async def tapped(packet, arrival_time_ms: int) -> None:
            # aiortc re-bases timestamps to start at 0 at the first frame (its TimestampMapper); so do we.
            if self._origin is None:
                self._origin = packet.timestamp
            self._arrivals[(packet.timestamp - self._origin) % (1 << 32)] = time.monotonic()
            while len(self._arrivals) > _REMEMBERED:
                self._arrivals.popitem(last=False)
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = tapped  # the DTLS transport looks it up on the instance per packet

    def arrival(self, pts: int | None) -> float | None:
        return None if pts is None else self._arrivals.get(pts)


def receiver_of(pc, track) -> RTCRtpReceiver | None:
    return next((r for r in pc.getReceivers() if r.track is track), None)
