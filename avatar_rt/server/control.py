"""The `control` datachannel: ping/pong for round-trip time, metrics pushed once a second.

Every message is validated; a bad one gets an `error` reply and changes nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from aiortc import RTCDataChannel

MAX_MESSAGE_BYTES = 64 * 1024
log = logging.getLogger(__name__)


class ControlChannel:
    def __init__(self, channel: RTCDataChannel, snapshot: Callable[[], dict]):
        self.channel = channel
        self._snapshot = snapshot
        channel.on("message", self._on_message)

    @property
    def open(self) -> bool:
        return self.channel.readyState == "open"

    def send(self, message: dict) -> None:
        if self.open:
            self.channel.send(json.dumps(message, separators=(",", ":")))

    def error(self, code: str, message: str) -> None:
        self.send({"type": "error", "code": code, "message": message})

    def push_metrics(self) -> None:
        self.send({"type": "metrics", **self._snapshot()})

    def _on_message(self, raw: str | bytes) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            self.error("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
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
        handler = {"ping": self._ping, "metrics": lambda m: self.push_metrics()}.get(msg["type"])
        if handler is None:
            self.error("unknown_type", f"unknown message type {msg['type'][:64]!r}; known: ping, metrics")
            return
        handler(msg)

    def _ping(self, msg: dict) -> None:
        reply = {"type": "pong", "server_time": time.time()}
        for key in ("id", "t"):
            if isinstance(msg.get(key), (int, float, str)) and not isinstance(msg.get(key), bool):
                reply[key] = msg[key]
        self.send(reply)
