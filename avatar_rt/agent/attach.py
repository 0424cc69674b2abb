"""Attaching a voice agent to a session, and the message dispatch both transports share.

`attach(session)` switches the session's audio source from the browser microphone to
the agent's segments (once; later calls return the same link) and starts the session's
clock if no viewer has started it, so segments play out and report even before anyone
watches. `handle_message` is the one place a parsed JSON message (from the WebSocket
or the `control` datachannel) becomes an agent or edit-API call.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from avatar_rt.agent.link import AGENT_TYPES, AgentLink
from avatar_rt.agent.segments import SegmentError
from avatar_rt.errors import AvatarRtError
from avatar_rt.server.edit_api import MESSAGE_TYPES as EDIT_TYPES

if TYPE_CHECKING:
    from avatar_rt.server.session import Session

MAX_TEXT_BYTES = 64 * 1024


class SessionHost:
    """The session as the link sees it (avatar_rt.agent.link.AgentHost)."""

    def __init__(self, session: Session):
        self.session = session

    def frames_in_flight(self) -> int:
        return self.session.pipeline.frames_in_flight

    def interrupt(self) -> None:
        self.session.pipeline.interrupt()

    def agent_state_changed(self, state: str) -> None:
        self.session.pipeline.agent_state = state

    def next_media_time(self) -> float:
        return self.session.pipeline.next_step_time

    def broadcast(self, event: dict) -> None:
        """Playback events also reach a browser watching the session (its page shows the agent's state)."""
        control = self.session.control
        if control is not None:
            control.send(event)


def attach(session: Session) -> AgentLink:
    if session.agent is None:
        host = SessionHost(session)
        link = AgentLink(host)
        link.subscribe(host.broadcast)
        session.agent = link
        session.start_clock()
    return session.agent


def parse_text(raw: str | bytes) -> dict:
    if len(raw) > MAX_TEXT_BYTES:
        raise SegmentError(f"text messages are limited to {MAX_TEXT_BYTES // 1024} KiB", "message_too_large")
    try:
        msg = json.loads(raw)
    except ValueError as exc:
        raise SegmentError(f"the message is not valid JSON: {exc}", "bad_json") from exc
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise SegmentError('a message is a JSON object with a string "type"', "bad_json")
    return msg


def handle_message(session: Session, msg: dict) -> dict | None:
    """An agent-protocol or edit-API message; the reply (with the request's "id" when it had one), or None."""
    kind = msg["type"]
    if kind in AGENT_TYPES:
        reply = attach(session).message(msg)
    elif kind in EDIT_TYPES:
        body = {k: v for k, v in msg.items() if k not in ("id", "type")}
        reply = session.edit(kind, body, from_http=True)
    else:
        raise SegmentError(f"unknown message type {kind[:40]!r}; known: {', '.join(AGENT_TYPES + EDIT_TYPES)}",
                           "unknown_type")
    request_id = msg.get("id")
    if reply is not None and kind not in ("segment.start", "segment.end") and isinstance(request_id, (str, int)):
        reply = {**reply, "id": request_id}
    return reply


def error_reply(exc: AvatarRtError, msg: dict | None = None) -> dict:
    reply = {"type": "error", "code": exc.code, "message": exc.message}
    if msg is not None:
        reply["request"] = msg.get("type")
        if msg.get("type") in ("segment.start", "segment.end") and isinstance(msg.get("id"), str):
            reply["segment_id"] = msg["id"]
        elif isinstance(msg.get("id"), (str, int)):
            reply["id"] = msg["id"]
    return reply


def control_message(session: Session, msg: dict | bytes) -> dict | None:
    """The `control` datachannel's hook: agent JSON messages, or binary PCM for the open segment."""
    try:
        if isinstance(msg, (bytes, bytearray)):
            attach(session).audio(msg)
            return None
        return handle_message(session, msg)
    except AvatarRtError as exc:
        return error_reply(exc, msg if isinstance(msg, dict) else None)
