"""A real aiortc client of the session API: a microphone that plays a signal in real time, and a peer
that receives the avatar. Shared by `avatar-rt bench` and the loopback tests."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

SEND_RATE = 48000
FRAME = 960  # 20 ms at 48 kHz: one Opus packet


class BenchError(Exception):
    """The server could not be used (unreachable, refused, broken answer): a message for the user."""


class Microphone(MediaStreamTrack):
    """Plays a fixed 48 kHz mono signal in real time, 20 ms a frame, then silence.

    `sent_at[k]` is when frame k (samples [k·960, (k+1)·960)) was handed to the encoder: the
    moment that audio left this client.

    `net_jitter_ms` > 0 plays a jittery network between here and the server: each frame is held back a
    random 0 to `net_jitter_ms` ms (uniform, in order: a held frame holds the ones behind it), and
    `sent_at[k]` is when frame k was due, so what the network adds counts in the latency measured.
    """

    kind = "audio"

    def __init__(self, pcm_48k: np.ndarray, net_jitter_ms: float = 0.0, seed: int = 0):
        super().__init__()
        self.pcm = pcm_48k
        self.sent = 0
        self.start: float | None = None
        self.sent_at: list[float] = []
        self.net_jitter_s = net_jitter_ms / 1000.0
        self._rng = np.random.default_rng(seed)

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.sent / SEND_RATE
        held = self._rng.uniform(0.0, self.net_jitter_s) if self.net_jitter_s > 0 else 0.0
        await asyncio.sleep(max(0.0, due + held - time.monotonic()))
        chunk = self.pcm[self.sent:self.sent + FRAME]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), dtype=np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SEND_RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, SEND_RATE)
        self.sent += FRAME
        self.sent_at.append(due if self.net_jitter_s > 0 else time.monotonic())
        return frame

    def left_at(self, sample_48k: int) -> float | None:
        """When the packet carrying this sample left (None if it has not yet)."""
        k = sample_48k // FRAME
        return self.sent_at[k] if k < len(self.sent_at) else None


async def http_json(http, method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    import aiohttp

    try:
        async with http.request(method, url, json=body) as resp:
            try:
                payload = await resp.json(content_type=None)
            except ValueError:
                payload = {"error": {"message": (await resp.text())[:200]}}
            return resp.status, payload
    except aiohttp.ClientConnectorError as exc:
        raise BenchError(f"cannot reach the server at {url}: {exc.os_error or exc}") from exc
    except aiohttp.ClientError as exc:
        raise BenchError(f"the server at {url} did not answer properly: {exc}") from exc


def _refusal(what: str, status: int, body: dict) -> BenchError:
    err = body.get("error", {}) if isinstance(body, dict) else {}
    message = err.get("message") or str(body)[:200]
    code = f" ({err['code']})" if err.get("code") else ""
    return BenchError(f"the server refused {what}: HTTP {status}{code}: {message}")


async def connect(http, base_url: str, pc: RTCPeerConnection, session_body: dict | None = None,
                  timeout_s: float = 10.0) -> tuple[dict, float]:
    """Create a session, offer `pc` to it, wait until connected.

    Returns the created session's description and the time (monotonic) the answer was applied.
    """
    status, created = await http_json(http, "POST", f"{base_url}/v1/sessions", session_body or {})
    if status != 201:
        raise _refusal("a new session", status, created)
    sid = created["session_id"]
    await pc.setLocalDescription(await pc.createOffer())
    status, answer = await http_json(http, "POST", f"{base_url}/v1/sessions/{sid}/offer",
                                     {"sdp": pc.localDescription.sdp, "type": "offer"})
    if status != 200:
        raise _refusal("the offer", status, answer)
    await pc.setRemoteDescription(RTCSessionDescription(**answer))
    answered = time.monotonic()
    deadline = answered + timeout_s
    while pc.connectionState != "connected":
        if time.monotonic() > deadline or pc.connectionState in ("failed", "closed"):
            raise BenchError(f"the WebRTC connection to session {sid[:8]} did not come up in {timeout_s:g} s "
                             f"(state {pc.connectionState}); is UDP between here and the server blocked?")
        await asyncio.sleep(0.02)
    return created, answered
