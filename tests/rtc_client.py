"""A real aiortc client for the tests: speaks a signal like a microphone, records what comes back."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections.abc import Awaitable, Callable

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

RATE = 16000
SEND_RATE = 48000
FRAME = 960  # 20 ms at 48 kHz


class SpeechTrack(MediaStreamTrack):
    """A microphone that plays a fixed signal in real time, then silence."""

    kind = "audio"

    def __init__(self, pcm_48k: np.ndarray):
        super().__init__()
        self.pcm = pcm_48k
        self.sent = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.sent / SEND_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        chunk = self.pcm[self.sent:self.sent + FRAME]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), dtype=np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SEND_RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, SEND_RATE)
        self.sent += FRAME
        return frame


async def http_json(session, method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    async with session.request(method, url, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def run_call(base_url: str, pcm_16k: np.ndarray, seconds: float,
                   during: Callable[[], Awaitable[None]] | None = None) -> dict:
    import aiohttp

    pcm_48k = np.repeat(pcm_16k, 3)  # exact 3× upsampling keeps sample alignment trivial
    mic = SpeechTrack(pcm_48k)
    pc = RTCPeerConnection()
    pc.addTrack(mic)
    pc.addTransceiver("video", direction="recvonly")
    channel = pc.createDataChannel("control")
    got = {"video": [], "audio": [], "messages": []}

    channel.on("message", lambda m: got["messages"].append(json.loads(m)))

    async def read_video(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            # The decoded picture as it is (I420: luma, then the two chroma planes), converted when read.
            got["video"].append((time.monotonic(), frame.to_ndarray(format="yuv420p")))

    async def read_audio(track):
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arrival = time.monotonic()
            for f in resampler.resample(frame):
                got["audio"].append((arrival, f.to_ndarray().reshape(-1)))

    tasks = []
    pc.on("track", lambda t: tasks.append(asyncio.ensure_future(read_video(t) if t.kind == "video" else read_audio(t))))

    async with aiohttp.ClientSession() as http:
        status, created = await http_json(http, "POST", f"{base_url}/v1/sessions", {})
        assert status == 201, created
        sid = created["session_id"]
        await pc.setLocalDescription(await pc.createOffer())
        status, answer = await http_json(http, "POST", f"{base_url}/v1/sessions/{sid}/offer",
                                         {"sdp": pc.localDescription.sdp, "type": "offer"})
        assert status == 200, answer
        await pc.setRemoteDescription(RTCSessionDescription(**answer))
        for _ in range(100):
            if pc.connectionState == "connected":
                break
            await asyncio.sleep(0.05)
        assert pc.connectionState == "connected"
        await asyncio.sleep(0.5)
        channel.send(json.dumps({"type": "ping", "id": 1, "t": 0}))
        channel.send(json.dumps({"type": "subscribe", "motion": ["arkit", "visemes"]}))
        if during is not None:
            started = time.monotonic()
            await during()
            await asyncio.sleep(max(0.0, seconds - (time.monotonic() - started)))
        else:
            await asyncio.sleep(seconds)
        channel.send("this is not json")
        await asyncio.sleep(0.3)
        await http_json(http, "DELETE", f"{base_url}/v1/sessions/{sid}")
    await pc.close()
    for t in tasks:
        t.cancel()
    got["mic_start"] = mic.start
    got["mouth_box"] = created["avatar"]["mouth_box"]
    return got


