"""The `control` datachannel: ping/pong for round-trip time, metrics pushed once a second.

Every message is validated; a bad one gets an `error` reply and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiortc import RTCDataChannel

from avatar_rt.agent.link import AGENT_TYPES
from avatar_rt.errors import AvatarRtError
from avatar_rt.server.edit_api import MESSAGE_TYPES as EDIT_TYPES
from avatar_rt.server.limits import RateLimiter

MAX_MESSAGE_BYTES = 64 * 1024
log = logging.getLogger(__name__)


class ControlChannel:
    def __init__(self, channel: RTCDataChannel, snapshot: Callable[[], dict],
                 on_edit: Callable[[str, dict], Awaitable[dict]] | None = None,
                 on_agent: Callable[[dict | bytes], dict | None] | None = None,
                 edit_rate: tuple[float, float] = (0.0, 1.0)):
        self.channel = channel
        self._snapshot = snapshot
        self._on_edit = on_edit
        # The voice-agent protocol (avatar_rt.agent): its JSON messages and binary PCM; returns a reply or None.
        self._on_agent = on_agent
        # Edits from this page, however it sends them: each one is a durable SQLite commit and may start a re-bake,
        # so a flooding page gets `rate_limited` errors instead of taking the event loop from every session.
        self._edit_limiter = RateLimiter(*edit_rate)
        self._edits_in_flight: set[asyncio.Task] = set()
        # Per-frame motion for 3D clients, off until asked for: {"arkit", "visemes", "params"}.
        self.motion_streams: set[str] = set()
        channel.on("message", self._on_message)

    @property
    def open(self) -> bool:
        return self.channel.readyState == "open"

    def send(self, message: dict) -> None:
        if self.open:
            self.channel.send(json.dumps(message, separators=(",", ":")))

    def error(self, code: str, message: str, request_id=None) -> None:
        reply = {"type": "error", "code": code, "message": message}
        if request_id is not None:
            reply["id"] = request_id
        self.send(reply)

    def push_metrics(self) -> None:
        self.send({"type": "metrics", **self._snapshot()})

    def _on_message(self, raw: str | bytes) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            self.error("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
            return
        if isinstance(raw, bytes) and self._on_agent is not None:
            self._reply(self._on_agent(raw))
            return
        if isinstance(raw, bytes):
            self.error("bad_message", "control messages are JSON text, not binary")
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            self.error("bad_message", "the message is not valid JSON")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.error("bad_message", 'a control message is a JSON object with a string "type"')
            return
        kind = msg["type"]
        if self._on_edit is not None and kind in EDIT_TYPES:
            self._edit(kind, msg)
            return
        if self._on_agent is not None and kind in AGENT_TYPES:
            self._reply(self._on_agent(msg))
            return
        handler = {"ping": self._ping, "metrics": lambda m: self.push_metrics(),
                   "subscribe": self._subscribe}.get(kind)
        if handler is None:
            known = ", ".join(("ping", "metrics", "subscribe") + EDIT_TYPES + AGENT_TYPES)
            request_id = msg.get("id") if isinstance(msg.get("id"), (int, str)) else None
            self.error("unknown_type", f"unknown message type {kind[:64]!r}; known: {known}", request_id)
            return
        handler(msg)

    def _reply(self, reply: dict | None) -> None:
        if reply is not None:
            self.send(reply)

    def _edit(self, kind: str, msg: dict) -> None:
        request_id = msg.get("id") if isinstance(msg.get("id"), (int, str)) else None
        wait = self._edit_limiter.take("channel")
        if wait > 0:
            self.error("rate_limited", self._edit_limiter.refusal("edits on this session's channel", wait) +
                       "; this edit was not applied", request_id)
            return
        body = {k: v for k, v in msg.items() if k not in ("id", "type")}  # transport keys, not edit fields
        # Carried out on the edit thread; its reply comes back in the order the edits came (one thread).
        task = asyncio.ensure_future(self._edit_reply(kind, body, request_id))
        self._edits_in_flight.add(task)
        task.add_done_callback(self._edits_in_flight.discard)

    async def _edit_reply(self, kind: str, body: dict, request_id) -> None:
        try:
            reply = await self._on_edit(kind, body)
        except AvatarRtError as exc:
            reply = {"type": "error", **exc.to_json()["error"]}
        except Exception:  # a bug: said on the channel and logged, never a dead task
            log.exception("control-channel %s failed", kind)
            reply = {"type": "error", "code": "internal", "message": "the server hit an unexpected error with this "
                     "edit; other sessions are unaffected"}
        if request_id is not None:
            reply["id"] = request_id
        self.send(reply)

    def _subscribe(self, msg: dict) -> None:
        streams = msg.get("motion", [])
        known = {"arkit", "visemes", "params"}
        if not isinstance(streams, list) or not all(isinstance(x, str) and x in known for x in streams):
            self.error("bad_message", f'"motion" must be a list drawn from {sorted(known)}')
            return
        self.motion_streams = set(streams)
        self.send({"type": "subscribed", "motion": sorted(self.motion_streams)})

    def push_motion(self, frame_index: int, fps: float, params) -> None:
        """One frame's motion, in the forms the client subscribed to."""
        if not self.motion_streams or not self.open:
            return
        from avatar_rt.motion import blendshapes

        msg: dict = {"type": "motion", "frame": frame_index, "t": round(frame_index / fps, 4)}
        if "arkit" in self.motion_streams:
            msg["arkit"] = {k: round(v, 3) for k, v in blendshapes.arkit_weights(params).items()}
            msg["head"] = {k: round(v, 4) for k, v in blendshapes.head_pose(params).items()}
        if "visemes" in self.motion_streams:
            msg["visemes"] = {k: round(v, 3) for k, v in blendshapes.viseme_weights(params).items()}
        if "params" in self.motion_streams:
            msg["params"] = [round(float(x), 4) for x in params.to_vector()]
        self.send(msg)

    def _ping(self, msg: dict) -> None:
        reply = {"type": "pong", "server_time": time.time()}
        for key in ("id", "t"):
            if isinstance(msg.get(key), (int, float, str)) and not isinstance(msg.get(key), bool):
                reply[key] = msg[key]
        self.send(reply)
