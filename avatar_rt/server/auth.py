"""Who may call the API: a bearer token whenever the server listens beyond loopback.

* The **server token** (`--token` or `AVATAR_RT_TOKEN`) opens every `/v1/` call. A server listening on a
  non-loopback address without one makes one at start and prints it (with the page's URL carrying it).
* A **session token** is returned with each new session (`session_token`): an HMAC of the session id under a
  key that lives only in this process. It opens that session's own calls (`/v1/sessions/{id}` and below) and
  nothing else, so a page can be handed one session without the server token; one session's token never
  reaches another session's edits, events or metrics.

Tokens come in `Authorization: Bearer …`, or as `?token=…` for the rare client that cannot set a header.
The page (`/`) and its static files carry no secrets and are served to anyone. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

from aiohttp import web

TOKEN_ENV = "AVATAR_RT_TOKEN"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere, or "" / "0.0.0.0"-like wildcards


@dataclass
class Auth:
    """`token` None means the API is open (loopback only: `for_host` never allows that elsewhere)."""

    token: str | None
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def for_host(cls, host: str, token: str | None) -> tuple["Auth", bool]:
        """The auth a server on `host` needs, and whether the token was made here (so it must be printed)."""
        if token:
            return cls(token), False
        if is_loopback(host):
            return cls(None), False
        return cls(secrets.token_urlsafe(24)), True

    @property
    def required(self) -> bool:
        return self.token is not None

    def session_token(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()

    def grant(self, session_id: str) -> dict:
        """What a new session's JSON carries: its own token, when tokens are in force."""
        return {"session_token": self.session_token(session_id)} if self.required else {}

    def allows(self, presented: str, session_id: str | None) -> bool:
        if not presented:
            return False
        if hmac.compare_digest(presented.encode(), self.token.encode()):
            return True
        return session_id is not None and hmac.compare_digest(presented.encode(),
                                                              self.session_token(session_id).encode())


def presented_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.query.get("token", "")


def auth_middleware(auth: Auth):
    @web.middleware
    async def middleware(request: web.Request, handler):
        if not auth.required or not request.path.startswith("/v1/"):
            return await handler(request)
        session_id = request.match_info.get("session_id")
        if not auth.allows(presented_token(request), session_id):
            message = ("this server needs a token: send 'Authorization: Bearer <token>' (the server token, or the "
                       "session_token of this session)")
            return web.json_response({"error": {"code": "unauthorized", "message": message}}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="avatar_rt"'})
        return await handler(request)

    return middleware
