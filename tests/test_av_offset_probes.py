"""benchmarks/agent_call.py's lips-vs-voice probes on cases whose answers are known (no server, seconds).

* the content proxy finds a known shift with the documented sign (positive = lips after voice), on
  the conventions the call and the offline baseline use (video at the time it is shown, audio chunks
  stamped just after their last sample);
* a sender report maps RTP timestamps to the sender's NTP clock through a 32-bit wrap, and a frame
  uses the latest report the viewer had at the time.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from lips_voice import RATE, lips_vs_voice  # noqa: E402
from rtp_sync import WRAP, ReceiverClock, signed  # noqa: E402

FPS = 25.0


def syllables(seconds: float, seed: int = 0) -> list[tuple[float, float]]:
    """Random (start, length) bursts of 'speech', 120-300 ms long, 150-600 ms apart."""
    rng = np.random.default_rng(seed)
    out, t = [], 0.5
    while t < seconds - 1:
        length = rng.uniform(0.12, 0.3)
        out.append((t, length))
        t += length + rng.uniform(0.15, 0.6)
    return out


def media(lips_after_voice_ms: float, seconds: float = 40.0):
    bursts = syllables(seconds)
    pcm = np.zeros(int(seconds * RATE), np.int16)
    rng = np.random.default_rng(1)
    for start, length in bursts:
        i, n = int(start * RATE), int(length * RATE)
        pcm[i:i + n] = (rng.standard_normal(n) * 6000 * np.hanning(n)).astype(np.int16)
    chunk = RATE // 50
    audio = [((k + chunk) / RATE, pcm[k:k + chunk]) for k in range(0, len(pcm), chunk)]
    video = []
    for n in range(int(seconds * FPS)):
        t = n / FPS - lips_after_voice_ms / 1000  # the frame shown at n/fps shows the mouth of this moment
        openness = sum(np.exp(-0.5 * ((t - (s + length / 2)) / (length / 3)) ** 2) for s, length in bursts)
        video.append((n / FPS, float(openness)))
    return video, audio, seconds


@pytest.mark.parametrize("shift_ms", [0, 60, -80])
def test_the_proxy_finds_a_known_shift_with_its_sign(shift_ms):
    video, audio, seconds = media(shift_ms)
    got = lips_vs_voice(video, audio, 0.0, seconds)
    assert got["offset_ms"] == pytest.approx(shift_ms, abs=10), got
    assert got["corr"] > 0.8


def test_sender_reports_map_rtp_to_ntp_across_the_wrap():
    assert signed(5 - (WRAP - 10)) == 15 and signed((WRAP - 10) - 5) == -15

    async def main():
        pc = RTCPeerConnection()
        receiver = pc.addTransceiver("audio", direction="recvonly").receiver
        clock = ReceiverClock(receiver, "audio")
        try:
            for ntp_s, rtp in ((1000.0, WRAP - 4800), (1001.0, 43_200)):
                info = RtcpSenderInfo(ntp_timestamp=int(ntp_s * WRAP), rtp_timestamp=rtp, packet_count=0,
                                      octet_count=0)
                await receiver._handle_rtcp_packet(RtcpSrPacket(ssrc=1, sender_info=info))
        finally:
            await pc.close()
        return clock

    clock = asyncio.run(main())
    first_at, last_at = clock.reports[0][0], clock.reports[1][0]
    assert clock.ntp(0, first_at - 1) is None  # no report yet
    # 100 ms past the first report's timestamp, across the 32-bit wrap, by the first report...
    assert clock.ntp(0, first_at) == pytest.approx(1000.1, abs=1e-6)
    # ...and by the second once the viewer has it (0 is 43 200 samples = 0.9 s before its timestamp).
    assert clock.ntp(0, last_at) == pytest.approx(1000.1, abs=1e-6)
    assert clock.ntp(48_000, last_at) == pytest.approx(1001.1, abs=1e-6)
