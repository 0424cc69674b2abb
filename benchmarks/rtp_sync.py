"""What the server declares about lips vs voice: the RTP timestamps and RTCP sender reports a viewer syncs on.

A browser does not play audio and video as they arrive: each RTCP sender report (SR) maps one RTP
timestamp of its stream to the sender's NTP clock, and the player shows a video frame together with
the audio whose RTP timestamps map to the same NTP time. So the offset a standard viewer gets is the
offset the server *declares*:

    declared(m) = NTP_video(frame of media time m) − NTP_audio(audio of media time m)

(positive = lips after voice). aiortc's sender stamps each SR with the NTP time at which it sent the
packet whose timestamp it reports, so a frame's declared time is when it left: video after its VP8
encode, audio after its Opus encode.

Two taps, both in-process probes of aiortc internals (a benchmark's, not the engine's):

* `SenderClock` (server side): which RTP timestamp carries the *content* of a media time. Video:
  origin + pts. Audio: Opus delays its output by its lookahead (312 samples at 48 kHz) behind the
  packet labels, and aiortc re-bases labels to its first packet, so audio content at media sample s
  (16 kHz) decodes at origin + 3·s − first_packet_pts.
* `ReceiverClock` (viewer side): the SRs the viewer received (when, NTP, RTP), and the RTP timestamp
  of each received frame, so received media can be placed on the NTP timeline a browser plays by.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter

import numpy as np
from aiortc.rtp import RtcpSrPacket

WRAP = 1 << 32
CLOCK = {"video": 90_000, "audio": 48_000}  # RTP clock rates of VP8 and Opus


def signed(delta: int) -> int:
    """A difference of two RTP timestamps, unwrapped to (-2^31, 2^31]."""
    delta %= WRAP
    return delta - WRAP if delta > WRAP // 2 else delta


def ntp_seconds(ntp: int) -> float:
    return (ntp >> 32) + (ntp & 0xFFFFFFFF) / WRAP


class SenderClock:
    """Server side: the absolute RTP timestamp under which one of the session's senders sends a media time."""

    def __init__(self, sender, kind: str):
        self.kind = kind
        self._sender = sender
        self._last_rel: int | None = None
        self.origins: Counter[int] = Counter()  # one value unless aiortc changed how it stamps packets
        self.first_label: int | None = None  # Opus: the pts of the first packet, which aiortc re-bases to 0
        next_frame = sender._next_encoded_frame  # the RTP loop looks it up on the instance per frame

        async def tapped(codec):
            self._note_origin()  # the previous frame's packets are all sent by now
            encoded = await next_frame(codec)
            if encoded is not None:
                self._last_rel = encoded.timestamp
                if self.first_label is None:  # the encoder is dropped when the sender stops: keep this now
                    self.first_label = getattr(sender._RTCRtpSender__encoder, "first_packet_pts", None)
            return encoded

        sender._next_encoded_frame = tapped

    def _note_origin(self) -> None:
        if self._last_rel is not None:
            self.origins[(self._sender._RTCRtpSender__rtp_timestamp - self._last_rel) % WRAP] += 1

    def content_rtp(self, media_time: float) -> int | None:
        """RTP timestamp at which the media of `media_time` (seconds on the session's clock) decodes."""
        if not self.origins:
            return None  # nothing sent yet
        origin = self.origins.most_common(1)[0][0]
        if self.kind == "video":
            return (origin + round(media_time * CLOCK["video"])) % WRAP
        if self.first_label is None:
            return None
        return (origin + round(media_time * CLOCK["audio"]) - self.first_label) % WRAP


class ReceiverClock:
    """Viewer side: the SRs one receiver got, and each received frame's absolute RTP timestamp."""

    def __init__(self, receiver, kind: str):
        self.kind = kind
        self.clock = CLOCK[kind]
        self._receiver = receiver
        self.reports: list[tuple[float, float, int]] = []  # (time.monotonic() received, NTP s, RTP)
        handle = receiver._handle_rtcp_packet  # the DTLS transport looks it up on the instance per packet

        async def tapped(packet) -> None:
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                self.reports.append((time.monotonic(), ntp_seconds(info.ntp_timestamp), info.rtp_timestamp))
            await handle(packet)

        receiver._handle_rtcp_packet = tapped

    def frame_rtp(self, pts: int) -> int | None:
        """A received frame's RTP timestamp (aiortc re-bases pts to its first frame)."""
        origin = self._receiver._RTCRtpReceiver__timestamp_mapper._origin
        return None if origin is None else (origin + pts) % WRAP

    def ntp(self, rtp: int, at: float) -> float | None:
        """NTP time (s) the sender declared for `rtp`, by the latest SR the viewer had at `at` (monotonic)."""
        i = bisect.bisect_right(self.reports, (at, float("inf"), 0)) - 1
        if i < 0:
            return None
        _, ntp, sr_rtp = self.reports[i]
        return ntp + signed(rtp - sr_rtp) / self.clock


def declared_offsets(frames: list[tuple[float, float]], senders: dict[str, SenderClock],
                     receivers: dict[str, ReceiverClock], t0: float, t1: float) -> dict:
    """NTP_video − NTP_audio of the same media time, for video frames handed to the sender in [t0, t1).

    frames: (media time, hand-off time.monotonic()) of the video frames; each uses the SRs the viewer
    had received by then.
    """
    offs = []
    for media, handed in frames:
        if not t0 <= handed < t1:
            continue
        rtp_v, rtp_a = senders["video"].content_rtp(media), senders["audio"].content_rtp(media)
        if rtp_v is None or rtp_a is None:
            continue
        ntp_v, ntp_a = receivers["video"].ntp(rtp_v, handed), receivers["audio"].ntp(rtp_a, handed)
        if ntp_v is not None and ntp_a is not None:
            offs.append(1000 * (ntp_v - ntp_a))
    if not offs:
        return {"error": "no sender reports or RTP origin in the window"}
    p5, p25, p50, p75, p95 = (round(float(v), 1) for v in np.percentile(offs, [5, 25, 50, 75, 95]))
    return {"median_ms": p50, "p5_ms": p5, "p25_ms": p25, "p75_ms": p75, "p95_ms": p95, "frames": len(offs),
            "share_within_40ms": round(float(np.mean(np.abs(offs) <= 40)), 3),
            "sender_reports": {k: sum(t0 <= r[0] < t1 for r in rc.reports) for k, rc in receivers.items()}}
