"""Limits that hold under abuse: per-client rate limits, and session slots that squatters cannot take.

Two ideas:

* **A slot is taken by a connection, not by a POST.** A session that was created but never offered costs a
  little memory and no slot: `max_sessions` counts sessions that are connecting or connected. Un-offered
  ("pending") sessions are capped per client (`pending_per_client`; the client's oldest is reclaimed when it
  makes one more) and in total, and expire after `pending_ttl_s`. A session whose connection never completes
  (ICE or DTLS stuck) is reclaimed after `connect_timeout_s`; a client that vanishes without DELETE is noticed
  by ICE consent freshness (RFC 7675) within about `consent_timeout_s`, and its session closed.
* **Token buckets per client and action** (session creation, edits, uploads): a burst is allowed, then a
  steady rate; past it, 429 with Retry-After. The buckets' table is bounded, so a flood of addresses
  cannot grow it without end.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from avatar_rt.errors import LimitError

log = logging.getLogger(__name__)


@dataclass
class Limits:
    """Every limit the server enforces; each has a `serve` flag (README "Security and limits")."""

    max_sessions: int = 4  # connecting + connected sessions
    pending_per_client: int = 4  # created, not yet offered, per client
    pending_total: int = 32  # created, not yet offered, in all
    pending_ttl_s: float = 15.0  # an un-offered session is reclaimed after this long
    connect_timeout_s: float = 20.0  # an offered session whose connection does not complete is reclaimed
    consent_timeout_s: float = 10.0  # a connected client silent this long (no ICE consent replies) is gone
    session_rate: tuple[float, float] = (0.5, 10)  # session creations per client: per second, burst
    edit_rate: tuple[float, float] = (20.0, 60)  # edit calls per client (HTTP), and per session's control channel
    upload_rate: tuple[float, float] = (0.2, 5)  # avatar uploads per client
    header_timeout_s: float = 10.0  # a client must send a request's line and headers within this (slow loris)
    max_upload_bytes: int = 20 * 2**20
    max_json_bytes: int = 256 * 2**10


class RateLimiter:
    """Token buckets keyed by client: `rate` tokens a second up to `burst`; rate 0 means unlimited."""

    def __init__(self, rate: float, burst: float, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst = float(rate), float(burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client → (tokens, at)

    def take(self, client: str) -> float:
        """0.0 if allowed (a token is spent), else the seconds until the next token."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)  # most recent last
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)  # the longest-idle client: its bucket had refilled anyway
        return wait

    def refusal(self, what: str, wait: float) -> str:
        """What a refused caller is told."""
        return (f"too many {what} (at most {self.burst:g} at once, then {self.rate:g} a second); "
                f"retry in {math.ceil(wait)} s")


class SessionLike(Protocol):
    session_id: str
    state: str
    pc: object

    async def close(self) -> None: ...


@dataclass
class _Entry:
    session: SessionLike
    client: str
    created: float = field(default_factory=time.monotonic)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)  # cancelled on close: they hold the session


def client_key(request: web.Request) -> str:
    """Who is asking: the peer address (a proxy in front should be trusted only by its own limits)."""
    return request.remote or "unknown"


class SessionSlots:
    """Which sessions hold a slot, which are pending, and reclaiming the ones nobody uses."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def _busy(session: SessionLike) -> bool:
        """Holds a slot: connecting or connected, or driven by a voice agent (its frames run without a viewer)."""
        return session.state in ("connecting", "connected") or getattr(session, "agent", None) is not None

    def active(self) -> int:
        return sum(1 for e in self._entries.values() if self._busy(e.session))

    def pending(self, client: str | None = None) -> list[_Entry]:
        return sorted((e for e in self._entries.values()
                       if not self._busy(e.session) and e.session.state == "new"
                       and (client is None or e.client == client)), key=lambda e: e.created)

    def check_capacity(self) -> None:
        if self.active() >= self.limits.max_sessions:
            raise LimitError(f"the server is at its limit of {self.limits.max_sessions} sessions; try again later")

    def admit(self, session: SessionLike, client: str) -> None:
        """Track a new (pending) session; reclaim the client's oldest pending ones past its allowance."""
        entry = _Entry(session, client)
        self._entries[session.session_id] = entry
        for old in self.pending(client)[:-self.limits.pending_per_client or None]:
            self._reclaim(old.session, "the client made newer sessions without offering this one")
        for old in self.pending()[:-self.limits.pending_total or None]:
            self._reclaim(old.session, "too many sessions waiting for an offer")
        if session.session_id in self._entries:  # (an allowance of 0 reclaims it at once)
            entry.timers.append(asyncio.get_running_loop().call_later(
                self.limits.pending_ttl_s, self._expire, session, ("new",), "no offer came"))

    def offered(self, session: SessionLike) -> None:
        """Call before applying an offer: refuses if every slot is taken, then watches the connection."""
        others = sum(1 for e in self._entries.values() if e.session is not session and self._busy(e.session))
        if others >= self.limits.max_sessions:
            raise LimitError(f"the server is at its limit of {self.limits.max_sessions} sessions; try again later")
        # "new" too: an offer that failed to apply puts the session back to new after its pending timer ran.
        entry = self._entries.get(session.session_id)
        if entry is not None:
            entry.timers.append(asyncio.get_running_loop().call_later(
                self.limits.connect_timeout_s, self._expire, session, ("new", "connecting"),
                "the connection did not complete"))

    def closed(self, session: SessionLike) -> None:
        entry = self._entries.pop(session.session_id, None)
        for timer in entry.timers if entry is not None else ():
            timer.cancel()

    def _expire(self, session: SessionLike, states: tuple[str, ...], why: str) -> None:
        # An agent-driven session is its socket's to end (avatar_rt.agent), not a squatter.
        if session.state in states and session.session_id in self._entries and \
                getattr(session, "agent", None) is None:
            self._reclaim(session, why)

    def _reclaim(self, session: SessionLike, why: str) -> None:
        log.info("session %s reclaimed: %s", session.session_id[:8], why)
        self.closed(session)  # forgotten now (its close below runs on the next turn of the loop)
        asyncio.ensure_future(session.close())


def shorten_ice_consent(timeout_s: float) -> None:
    """A vanished client is noticed after about `timeout_s` instead of aioice's 30 s (6 × 5 s).

    aioice reads these module constants on every consent check; a check that gets no reply counts as a
    failure, and after CONSENT_FAILURES in a row the ICE connection closes, and so does the session.
    """
    from aioice import ice

    ice.CONSENT_INTERVAL = max(1.0, timeout_s / 5)
    ice.CONSENT_FAILURES = max(2, int(math.ceil(timeout_s / ice.CONSENT_INTERVAL)))


# (method, path shape) → which bucket a call spends from; paths are matched on their resource pattern.
RATED: dict[tuple[str, str], str] = {
    ("POST", "/v1/sessions"): "session",
    ("POST", "/v1/avatars"): "upload",
    ("POST", "/v1/sessions/{session_id}/edits"): "edit",
    ("POST", "/v1/sessions/{session_id}/edits/text"): "edit",
    ("POST", "/v1/sessions/{session_id}/edits/undo"): "edit",
    ("PUT", "/v1/sessions/{session_id}/presets/{name}"): "edit",
    ("POST", "/v1/sessions/{session_id}/presets/{name}/apply"): "edit",
}


def rate_limit_middleware(limits: Limits):
    limiters = {"session": RateLimiter(*limits.session_rate), "edit": RateLimiter(*limits.edit_rate),
                "upload": RateLimiter(*limits.upload_rate)}
    what = {"session": "sessions created", "edit": "edits", "upload": "avatar uploads"}

    @web.middleware
    async def middleware(request: web.Request, handler):
        resource = request.match_info.route.resource
        action = RATED.get((request.method, resource.canonical if resource is not None else ""))
        if action is not None:
            limiter = limiters[action]
            wait = limiter.take(client_key(request))
            if wait > 0:
                message = limiter.refusal(f"{what[action]} from this client", wait)
                return web.json_response({"error": {"code": "rate_limited", "message": message}}, status=429,
                                         headers={"Retry-After": str(math.ceil(wait))})
        return await handler(request)

    return middleware
