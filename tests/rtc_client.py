"""A real aiortc client for the tests: speaks a signal like a microphone, records what comes back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import av
import numpy as np
from aiortc import RTCPeerConnection

from avatar_rt.bench.client import Microphone, connect, http_json
from avatar_rt.rtc_frames import received_frames

RATE = 16000


async def run_call(base_url: str, pcm_16k: np.ndarray, seconds: float,
                   during: Callable[[], Awaitable[None]] | None = None) -> dict:
    import aiohttp

    pcm_48k = np.repeat(pcm_16k, 3)  # exact 3× upsampling keeps sample alignment trivial
    mic = Microphone(pcm_48k)
    pc = RTCPeerConnection()
    pc.addTrack(mic)
    pc.addTransceiver("video", direction="recvonly")
    channel = pc.createDataChannel("control")
    got = {"video": [], "audio": [], "messages": []}

    channel.on("message", lambda m: got["messages"].append(json.loads(m)))

    async def read_video(track):
        async for frame in received_frames(track):
            # The decoded picture as it is (I420: luma, then the two chroma planes), converted when read.
            got["video"].append((time.monotonic(), frame.to_ndarray(format="yuv420p")))

    async def read_audio(track):
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        async for frame in received_frames(track):
            arrival = time.monotonic()
            for f in resampler.resample(frame):
                got["audio"].append((arrival, f.to_ndarray().reshape(-1)))

    tasks = []
    pc.on("track", lambda t: tasks.append(asyncio.ensure_future(read_video(t) if t.kind == "video" else read_audio(t))))

    async with aiohttp.ClientSession() as http:
        created, _ = await connect(http, base_url, pc)
        sid = created["session_id"]
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


