"""A voice agent attached to one session: its segment player, its messages, and who hears its events.

The session's frame loop asks the link for each frame's audio (`pull`) instead of the
microphone's jitter buffer, and tells it when a frame leaves (`frame_out`); transports
(the WebSocket, the `control` datachannel, in-process adapters) hand it messages
(`message`, `audio`) and subscribe to its events. The link knows the session only
through the `AgentHost` protocol below, so it can be tested without a peer connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from avatar_rt.agent.segments import DEFAULT_MAX_BUFFER_S, SegmentError, SegmentPlayer

log = logging.getLogger(__name__)

# Message types the agent protocol understands (the edit API's types are served beside them).
AGENT_TYPES = ("config", "segment.start", "segment.end", "clear", "state", "agent.get")


class AgentHost(Protocol):
    """What the link needs from its session."""

    def frames_in_flight(self) -> int: ...  # steps whose frames have not come out of the pipeline yet

    def interrupt(self) -> None: ...  # barge-in: silence the delay line, release the mouth

    def agent_state_changed(self, state: str) -> None: ...  # idle / listening / thinking / speaking

    def next_media_time(self) -> float: ...  # media time (s) at which the next pulled slice will play


Listener = Callable[[dict], None]


class AgentLink:
    def __init__(self, host: AgentHost, *, max_buffer_s: float = DEFAULT_MAX_BUFFER_S):
        self.host = host
        self.listeners: list[Listener] = []
        self.player = SegmentPlayer(self._emit, max_buffer_s=max_buffer_s)
        self._primed = False
        self.connected = False  # a WebSocket agent is attached (one at a time)
        self.frames_silenced = 0  # frames whose audio was pulled before a clear and sent as silence instead
        self.last_clear: float | None = None  # time.monotonic() of the latest clear, for benchmarks

    # --- events --------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def _emit(self, event: dict) -> None:
        event = {**event, "server_time": time.time()}
        if event["type"] == "agent.state":
            self.host.agent_state_changed(event["state"])
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # one broken listener must not cost the others their events
                log.exception("agent event listener failed")

    # --- the frame loop ------------------------------------------------------------------------
    def pull(self, samples: int) -> np.ndarray:
        if not self._primed:
            # Joined a running session: the frames already in the pipeline leave first, as silence.
            self.player.prime(self.host.frames_in_flight())
            self._primed = True
        return self.player.pull(samples).audio

    def frame_out(self, audio: np.ndarray, media_time_s: float | None = None) -> np.ndarray:
        """The audio to send with the frame now leaving: its own, or silence if it was cleared meanwhile."""
        if self.player.frame_sent(media_time_s):
            return audio
        self.frames_silenced += 1
        return np.zeros_like(audio)

    # --- what transports call ------------------------------------------------------------------
    def audio(self, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        self.player.push(data)

    def clear(self) -> None:
        self.last_clear = time.monotonic()
        self.host.interrupt()
        self.player.clear()

    def disconnect(self) -> None:
        self.connected = False
        if self.player.active_ids:
            self.host.interrupt()
        self.player.disconnect()

    def describe(self) -> dict:
        """The player's state, and `queue_ends_at_s`: the media time at which audio pushed now would start
        playing (to time an edit's `at` to a reply's first word)."""
        end = self.host.next_media_time() + self.player.buffered_samples / 16000
        return {**self.player.describe(), "queue_ends_at_s": round(end, 4)}

    def message(self, msg: dict) -> dict | None:
        """One agent-protocol message (already parsed); the reply, if the message has one. Raises SegmentError."""
        kind = msg.get("type")
        if kind == "config":
            self.player.configure(msg.get("sample_rate"))
            return {"type": "config.ack", "sample_rate": self.player.sample_rate,
                    "max_buffer_s": self.player.max_buffer / 16000}
        if kind == "segment.start":
            self.player.start(msg.get("id"), text=msg.get("text"), sample_rate=msg.get("sample_rate"))
            return None
        if kind == "segment.end":
            segment_id = msg.get("id")
            if not isinstance(segment_id, str):
                raise SegmentError('segment.end needs the segment\'s "id" (a string)', "bad_segment_id")
            self.player.end(segment_id)
            return None
        if kind == "clear":
            self.clear()
            return None
        if kind == "state":
            self.player.set_state(msg.get("state"))
            return None
        if kind == "agent.get":
            return {"type": "agent", **self.describe()}
        raise SegmentError(f"unknown agent message {str(kind)[:40]!r}; known: {', '.join(AGENT_TYPES)}",
                           "unknown_type")
