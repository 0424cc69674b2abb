"""A minimal real aiortc viewer: creates a session, connects, counts the frames that arrive.

Smaller than rtc_client.run_call (no speech, no recording of pictures): for the limits, auth and fuzz tests
and the memory and soak benchmarks, which need many connections or one long one, from a chosen source
address (127.0.0.x: every address in 127/8 is loopback on Linux, so one machine can be several clients).
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from avatar_rt.rtc_frames import received_frames


class PcmTrack(MediaStreamTrack):
    """A microphone playing `pcm` (int16, 48 kHz mono) in real time, looping, with `pause_s` of silence between."""

    kind = "audio"

    def __init__(self, pcm_48k: np.ndarray | None = None, pause_s: float = 0.0):
        super().__init__()
        silence = np.zeros(int(48000 * pause_s), dtype=np.int16)
        self.pcm = np.concatenate([pcm_48k, silence]) if pcm_48k is not None else np.zeros(960, dtype=np.int16)
        self.sent = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.sent / 48000 - time.monotonic()))
        i = self.sent % len(self.pcm)
        chunk = np.resize(np.roll(self.pcm, -i), 960)
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.sent, fractions.Fraction(1, 48000)
        self.sent += 960
        return frame


class Viewer:
    def __init__(self, base_url: str, *, headers: dict | None = None, source: str | None = None,
                 mic: MediaStreamTrack | None = None):
        self.base_url = base_url
        self.headers = dict(headers or {})
        self.source = source
        self.mic = mic
        self.pc = RTCPeerConnection()
        self.frames: list[float] = []  # arrival times
        self.audio: list[tuple[float, np.ndarray]] = []  # (arrival, 16 kHz int16)
        self.messages: list[dict] = []
        self.session: dict = {}
        self.channel = None
        self._tasks: list[asyncio.Task] = []
        self._http: aiohttp.ClientSession | None = None

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(local_addr=(self.source, 0) if self.source else None, force_close=True)
            self._http = aiohttp.ClientSession(connector=connector, headers=self.headers)
        return self._http

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        async with self.http().request(method, self.base_url + path, json=body) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None)

    async def _read(self, track) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000) if track.kind == "audio" else None
        async for frame in received_frames(track):
            now = time.monotonic()
            if resampler is None:
                self.frames.append(now)
            else:
                for f in resampler.resample(frame):
                    self.audio.append((now, f.to_ndarray().reshape(-1)))

    async def connect(self, timeout_s: float = 15.0, body: dict | None = None) -> None:
        status, self.session = await self.call("POST", "/v1/sessions", body or {})
        assert status == 201, (status, self.session)
        if self.mic is not None:
            self.pc.addTrack(self.mic)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("control")
        self.channel.on("message", lambda m: self.messages.append(json.loads(m)))
        self.pc.on("track", lambda t: self._tasks.append(asyncio.ensure_future(self._read(t))))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, answer = await self.call("POST", f"/v1/sessions/{self.session_id}/offer",
                                         {"sdp": self.pc.localDescription.sdp, "type": "offer"})
        assert status == 200, (status, answer)
        await self.pc.setRemoteDescription(RTCSessionDescription(**answer))
        deadline = time.monotonic() + timeout_s
        while self.pc.connectionState != "connected":
            assert time.monotonic() < deadline, f"not connected after {timeout_s} s: {self.pc.connectionState}"
            await asyncio.sleep(0.05)

    @property
    def session_id(self) -> str:
        return self.session["session_id"]

    def fps(self, window_s: float) -> float:
        now = time.monotonic()
        return sum(1 for t in self.frames if t > now - window_s) / window_s

    async def close(self, delete: bool = True) -> None:
        """Leave: with DELETE (a polite client), or without (a tab closed, a network gone)."""
        if delete:
            await self.call("DELETE", f"/v1/sessions/{self.session_id}")
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        if self._http is not None:
            await self._http.close()


async def _watch(base_url: str) -> None:
    """`python tests/peer.py URL`: one viewer in its own process (so the caller's CPU use cannot slow its
    decoding); prints `session <id>`, then each second `second <unix time> <frames> <state> <ping p50 ms>
    <ping max ms>` until stdin closes. It pings the server on its control channel every 100 ms: the round trip
    passes through the server's event loop, so it shows that loop's lag from outside, on any server version
    ("-" when no pong came back within the second)."""
    import sys

    viewer = Viewer(base_url)
    await viewer.connect()
    print(f"session {viewer.session_id}", flush=True)
    rtts: list[float] = []

    def on_message(raw) -> None:
        msg = json.loads(raw)
        if msg.get("type") == "pong" and isinstance(msg.get("t"), float):
            rtts.append(1000.0 * (time.monotonic() - msg["t"]))

    viewer.channel.on("message", on_message)

    async def ping() -> None:
        while True:
            if viewer.channel.readyState == "open":  # it opens a moment after the connection does
                viewer.channel.send(json.dumps({"type": "ping", "t": time.monotonic()}))
            await asyncio.sleep(0.1)

    pinger = asyncio.ensure_future(ping())
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    start, second = time.monotonic(), 0
    while not stdin_closed.done():
        await asyncio.sleep(start + second + 1 - time.monotonic())
        n = sum(1 for t in viewer.frames if start + second <= t < start + second + 1)
        got, rtts[:] = sorted(rtts), []
        ping_ms = f"{got[len(got) // 2]:.1f} {got[-1]:.1f}" if got else "- -"
        print(f"second {time.time():.3f} {n} {viewer.pc.connectionState} {ping_ms}", flush=True)
        second += 1
    pinger.cancel()
    await viewer.close()


if __name__ == "__main__":
    import sys

    asyncio.run(_watch(sys.argv[1]))
