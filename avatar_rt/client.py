"""An async Python client for avatar_rt: sessions, the edit API, and the voice-agent socket.

    import asyncio
    from avatar_rt.client import AvatarClient

    async def main():
        async with AvatarClient("http://127.0.0.1:8080") as client:    # token=… or $AVATAR_RT_TOKEN
            session = await client.create_session()
            print("watch at", client.watch_url(session))
            async with await client.connect_agent(session.session_id, sample_rate=22050) as agent:
                await agent.edit({"set": {"emotion": {"happy": 0.6}}})
                reply = await agent.say(pcm_22k, text="Hello!")          # start, push, end
                finished = await agent.wait_finished(reply)             # played out (or interrupted)
                print(finished.position_s, finished.interrupted)

    asyncio.run(main())

`say` returns at once (the audio is queued and plays at real time); `clear()` is the
barge-in; `set_state("listening" | "thinking" | …)` tells the face what to show
between replies; `events()` yields every event the server sends (typed below).
The protocol itself is documented in docs/api.md ("Voice agents").

A server listening beyond loopback wants a bearer token (README "Security and limits"): give it as
`AvatarClient(url, token=…)` or in `$AVATAR_RT_TOKEN`; every call, the agent socket and anything sent through
`client.http` then carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

AgentState = str  # "idle" | "listening" | "thinking" | "speaking"
TOKEN_ENV = "AVATAR_RT_TOKEN"  # the server's --token default too (avatar_rt/server/auth.py)


class AvatarApiError(Exception):
    """An error the server answered with: its stable `code` and its message."""

    def __init__(self, code: str, message: str, status: int | None = None, detail: dict | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status, self.detail = code, message, status, detail or {}


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    fps: float
    size: int
    avatar_id: str
    raw: dict = field(repr=False)


@dataclass(frozen=True)
class PlaybackStarted:
    id: str
    media_time_s: float | None  # the first frame's media time (the `at` base of the edit API)
    server_time: float


@dataclass(frozen=True)
class PlaybackFinished:
    id: str
    position_s: float  # how much of the segment the viewer was sent
    interrupted: bool  # cleared (barge-in) or cut by a disconnect
    server_time: float


@dataclass(frozen=True)
class StateChanged:
    state: AgentState
    server_time: float


@dataclass(frozen=True)
class ServerError:
    code: str
    message: str
    request: str | None
    segment_id: str | None


AgentEvent = PlaybackStarted | PlaybackFinished | StateChanged | ServerError | dict


def _event(raw: dict) -> AgentEvent:
    kind = raw.get("type")
    if kind == "playback.started":
        return PlaybackStarted(raw["id"], raw.get("media_time_s"), raw.get("server_time", 0.0))
    if kind == "playback.finished":
        return PlaybackFinished(raw["id"], raw["position_s"], raw["interrupted"], raw.get("server_time", 0.0))
    if kind == "agent.state":
        return StateChanged(raw["state"], raw.get("server_time", 0.0))
    if kind == "error":
        return ServerError(raw["code"], raw["message"], raw.get("request"), raw.get("segment_id"))
    return raw


def _pcm_bytes(pcm: bytes | np.ndarray) -> bytes:
    if isinstance(pcm, np.ndarray):
        if pcm.dtype.kind == "f":
            pcm = (np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16)
        return pcm.astype("<i2", copy=False).reshape(-1).tobytes()
    return bytes(pcm)


class AvatarClient:
    """HTTP side: sessions and edits. Use as `async with AvatarClient(url) as client`."""

    def __init__(self, base_url: str, *, token: str | None = None, http: aiohttp.ClientSession | None = None):
        """`token`: the server's bearer token (or a session_token, for that session's calls only); default
        $AVATAR_RT_TOKEN; none for a server on loopback without one."""
        self.base_url = base_url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self._http = http
        self._own_http = http is None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def __aenter__(self) -> AvatarClient:
        self.http  # noqa: B018  (created here, inside the caller's event loop)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """The HTTP session; one this client made sends the token with every request."""
        if self._http is None:
            self._http = aiohttp.ClientSession(headers=self.headers)
        return self._http

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        async with self.http.request(method, self.base_url + path, json=body, headers=self.headers) as resp:
            data = await resp.json(content_type=None) if resp.status != 204 else {}
            if resp.status >= 400:
                err = (data or {}).get("error", {})
                raise AvatarApiError(err.get("code", "http_error"), err.get("message", str(resp.status)),
                                     resp.status, data)
            return data or {}

    async def create_session(self, avatar_id: str | None = None) -> SessionInfo:
        raw = await self._call("POST", "/v1/sessions", {"avatar_id": avatar_id} if avatar_id else {})
        return SessionInfo(raw["session_id"], raw["fps"], raw["size"], raw["avatar"]["avatar_id"], raw)

    async def delete_session(self, session_id: str) -> None:
        await self._call("DELETE", f"/v1/sessions/{session_id}")

    async def edit(self, session_id: str, edit: dict) -> dict:
        """The edit API (docs/api.md "Edits"): e.g. {"set": {"emotion": {"happy": 0.7}}, "at": 12.5}."""
        return await self._call("POST", f"/v1/sessions/{session_id}/edits", edit)

    async def edit_text(self, session_id: str, text: str) -> dict:
        return await self._call("POST", f"/v1/sessions/{session_id}/edits/text", {"text": text})

    def watch_url(self, session: SessionInfo | str) -> str:
        """The page that watches this session in a browser (the web client with ?session=…), with the
        session's own token when the server gave one (it opens that session only), else this client's."""
        sid = session.session_id if isinstance(session, SessionInfo) else session
        token = session.raw.get("session_token") if isinstance(session, SessionInfo) else None
        token = token or self.token
        return f"{self.base_url}/?session={sid}" + (f"&token={token}" if token else "")

    async def connect_agent(self, session_id: str, *, sample_rate: int | None = 16000) -> AgentConnection:
        """Attach as the session's voice agent: its audio then comes from this connection's segments.
        `sample_rate=None` leaves the rate to declare later with `AgentConnection.configure`."""
        query = f"?sample_rate={sample_rate}" if sample_rate else ""
        url = self.base_url.replace("http", "ws", 1) + f"/v1/sessions/{session_id}/agent{query}"
        try:
            ws = await self.http.ws_connect(url, heartbeat=10.0, max_msg_size=1 << 20, headers=self.headers)
        except aiohttp.WSServerHandshakeError as exc:
            raise AvatarApiError("agent_refused", f"the server refused the agent socket ({exc.status})",
                                 exc.status) from exc
        conn = AgentConnection(ws, sample_rate)
        await conn._started()
        return conn


class AgentConnection:
    """One session's agent socket: segments in, events out. Use as `async with`; `close()` ends it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, sample_rate: int | None):
        self._ws = ws
        self.sample_rate = sample_rate
        self.session: dict = {}
        self._events: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        self._finished: dict[str, asyncio.Future[PlaybackFinished]] = {}
        self._replies: dict[int, asyncio.Future[dict]] = {}
        self._ids = itertools.count(1)
        self._hello: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())
        self.state: AgentState = "idle"

    async def __aenter__(self) -> AgentConnection:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _started(self) -> None:
        self.session = await asyncio.wait_for(self._hello, 10.0)

    async def _read(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                raw = json.loads(msg.data)
                if raw.get("type") == "session" and not self._hello.done():
                    self._hello.set_result(raw)
                    continue
                request_id = raw.get("id")
                if isinstance(request_id, int) and request_id in self._replies:
                    self._replies.pop(request_id).set_result(raw)
                    continue
                event = _event(raw)
                if isinstance(event, PlaybackFinished):
                    self._finished.setdefault(event.id, asyncio.get_running_loop().create_future())
                    if not self._finished[event.id].done():
                        self._finished[event.id].set_result(event)
                elif isinstance(event, StateChanged):
                    self.state = event.state
                self._events.put_nowait(event)
        finally:
            self._events.put_nowait(None)
            for fut in list(self._replies.values()) + [self._hello]:
                if not fut.done():
                    fut.set_exception(ConnectionError("the agent socket closed"))

    # --- segments --------------------------------------------------------------------------------
    async def start_segment(self, segment_id: str | None = None, *, text: str | None = None) -> str:
        segment_id = segment_id or uuid.uuid4().hex[:12]
        msg: dict[str, Any] = {"type": "segment.start", "id": segment_id}
        if text is not None:
            msg["text"] = text
        self._finished.setdefault(segment_id, asyncio.get_running_loop().create_future())
        await self._ws.send_json(msg)
        return segment_id

    async def push_audio(self, pcm: bytes | np.ndarray) -> None:
        """PCM16 mono at this connection's sample rate (int16 array, float array in [-1, 1], or bytes)."""
        await self._ws.send_bytes(_pcm_bytes(pcm))

    async def end_segment(self, segment_id: str) -> None:
        await self._ws.send_json({"type": "segment.end", "id": segment_id})

    async def say(self, pcm: bytes | np.ndarray, *, text: str | None = None, segment_id: str | None = None,
                  chunk_s: float = 0.5) -> str:
        """One whole reply: start, push in chunks, end. Returns its id; it plays at real time after queued ones."""
        data = _pcm_bytes(pcm)
        segment_id = await self.start_segment(segment_id, text=text)
        step = max(2, int(chunk_s * (self.sample_rate or 16000)) * 2)
        for i in range(0, len(data), step):
            await self.push_audio(data[i:i + step])
        await self.end_segment(segment_id)
        return segment_id

    async def wait_finished(self, segment_id: str, timeout: float | None = None) -> PlaybackFinished:
        fut = self._finished.setdefault(segment_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    async def clear(self) -> None:
        """Barge-in: drop everything queued or playing; each segment gets its finished{interrupted}."""
        await self._ws.send_json({"type": "clear"})

    async def set_state(self, state: AgentState) -> None:
        await self._ws.send_json({"type": "state", "state": state})

    # --- requests with replies --------------------------------------------------------------------
    async def request(self, msg: dict, timeout: float = 10.0) -> dict:
        request_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._replies[request_id] = fut
        await self._ws.send_json({**msg, "id": request_id})
        reply = await asyncio.wait_for(fut, timeout)
        if reply.get("type") == "error":
            raise AvatarApiError(reply["code"], reply["message"], detail=reply)
        return reply

    async def configure(self, sample_rate: int) -> None:
        """Declare the PCM rate (once per session; 16000, 22050, 24000 or 48000)."""
        await self.request({"type": "config", "sample_rate": sample_rate})
        self.sample_rate = sample_rate

    async def describe(self) -> dict:
        """The agent's state: segments queued, buffered_s, and queue_ends_at_s (media time audio pushed now starts)."""
        return await self.request({"type": "agent.get"})

    async def edit(self, edit: dict) -> dict:
        """The edit API over this socket (same body as POST /edits); returns the edit.ack."""
        return await self.request({**edit, "type": "edit"})

    # --- events -----------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[AgentEvent]:
        """Every event until the socket closes (a single consumer)."""
        while (event := await self._events.get()) is not None:
            yield event

    async def close(self) -> None:
        await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._reader, 2.0)
