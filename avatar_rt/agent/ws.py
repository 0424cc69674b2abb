"""The agent WebSocket, GET /v1/sessions/{id}/agent: binary = PCM16 mono, text = JSON; events come back as text.

One agent per session at a time (a second gets 409 before the upgrade). A dropped
socket ends the agent's segments cleanly (each gets its playback.finished, interrupted);
the session stays for the viewer, and one nobody watches is closed after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import WSMsgType, web

from avatar_rt.agent.attach import attach, error_reply, handle_message, parse_text
from avatar_rt.errors import AvatarRtError

log = logging.getLogger(__name__)

MAX_BINARY_BYTES = 1 << 20  # one push: 1 MiB is ~22 s at 24 kHz
# A session no viewer ever connected to is closed this long after its agent leaves (unless one comes back).
ORPHAN_TTL_S = 60.0


async def agent_socket(request: web.Request) -> web.StreamResponse:
    session = request.app["server"]._session(request)  # 404 (JSON) before any upgrade
    link = attach(session)
    if link.connected:
        raise AvatarRtError("an agent is already connected to this session; one agent socket at a time",
                            code="agent_connected", status=409)
    rate = request.query.get("sample_rate")
    if rate is not None:
        if not rate.isdigit():
            raise AvatarRtError(f"sample_rate must be a whole number of Hz, got {rate[:16]!r}", code="bad_rate")
        link.player.configure(int(rate))
    ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_BINARY_BYTES)
    await ws.prepare(request)
    link.connected = True
    outbox: asyncio.Queue[dict | None] = asyncio.Queue()  # events are few and small; order must hold
    unsubscribe = link.subscribe(outbox.put_nowait)

    async def sender() -> None:
        while (event := await outbox.get()) is not None:
            if ws.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps(event, separators=(",", ":")))
            if event["type"] == "session.closed":
                await ws.close(message=b"the session was closed")
                return

    def on_session_closed(_session) -> None:
        # Deleted, or its viewer left: the agent hears each segment's end, then why the socket closes.
        link.disconnect()
        outbox.put_nowait({"type": "session.closed", "session_id": session.session_id})

    session.on_closed.append(on_session_closed)

    send_task = asyncio.create_task(sender())
    outbox.put_nowait({"type": "session", "session_id": session.session_id, "fps": session.fps,
                       **link.describe()})
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                try:
                    link.audio(message.data)
                except AvatarRtError as exc:
                    outbox.put_nowait(error_reply(exc))
            elif message.type == WSMsgType.TEXT:
                msg = None
                try:
                    msg = parse_text(message.data)
                    reply = handle_message(session, msg)
                except AvatarRtError as exc:
                    reply = error_reply(exc, msg)
                if reply is not None:
                    outbox.put_nowait(reply)
            elif message.type == WSMsgType.ERROR:
                log.info("session %s: agent socket error %s", session.session_id[:8], ws.exception())
    finally:
        with contextlib.suppress(ValueError):
            session.on_closed.remove(on_session_closed)
        unsubscribe()
        link.disconnect()  # unfinished segments end, interrupted; the face goes idle
        outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(send_task, 1.0)
        if session.state == "new":
            asyncio.get_running_loop().call_later(ORPHAN_TTL_S, _close_if_orphaned, session)
    return ws


def _close_if_orphaned(session) -> None:
    if session.state == "new" and session.agent is not None and not session.agent.connected:
        asyncio.ensure_future(session.close())
