"""The received audio's path inside aiortc: when each RTP packet arrived, and how long aiortc holds it.

aiortc decodes audio on a thread and hands frames over with the RTP timestamp as pts, but
not when the packet arrived; `PacketClock` taps the receiver to remember that, so the
ingress stage (packet → decoded chunk) can be measured rather than guessed.

aiortc's audio receiver also keeps its own jitter buffer that releases a packet only once
four more have arrived (prefetch 4: 80 ms of 20 ms Opus packets) — in front of the
session's own jitter buffer, which already absorbs arrival jitter and is the one that is
bounded and measured. Even at prefetch 1 it holds each packet until the next one shows that
its frame is complete (20 ms), which an Opus packet never needs: one RTP packet carries one
whole Opus frame (RFC 7587). `pass_audio_through` replaces it by a buffer that hands each
packet to the decoder as it arrives.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

log = logging.getLogger(__name__)

_REMEMBERED = 64  # frames: over a second of audio or video, far beyond any frame still in flight


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


class PassThroughAudioBuffer(JitterBuffer):
    """Each audio packet to the decoder as it arrives (one RTP packet is one whole Opus frame). A packet older
    than one already passed on (re-ordered or duplicated) is dropped: it is too late to play; a gap (a lost
    packet) is skipped. The session's own jitter buffer absorbs the arrival jitter."""

    def __init__(self, capacity: int):
        super().__init__(capacity=capacity)
        self._next: int | None = None  # the sequence number expected next

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._next is not None and uint16_add(seq, -self._next) >= 0x8000:
            return False, None  # older than what was already decoded
        self._next = uint16_add(seq, 1)
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


def pass_audio_through(receiver: RTCRtpReceiver) -> bool:
    """Replace an audio receiver's jitter buffer by `PassThroughAudioBuffer`; False if aiortc changed."""
    attr = "_RTCRtpReceiver__jitter_buffer"
    old = getattr(receiver, attr, None)
    if not isinstance(old, JitterBuffer) or receiver.track is None or receiver.track.kind != "audio":
        log.warning("cannot replace aiortc's audio jitter buffer (aiortc internals changed); keeping it")
        return False
    setattr(receiver, attr, PassThroughAudioBuffer(capacity=old.capacity))
    return True


def receiver_of(pc, track) -> RTCRtpReceiver | None:
    return next((r for r in pc.getReceivers() if r.track is track), None)
