"""The voice-agent endpoints and WHEP egress, added to the app in one call so the server module stays small."""

from __future__ import annotations

from aiohttp import web

from avatar_rt.agent.ws import agent_socket
from avatar_rt.server.whep import add_whep_routes


def add_agent_routes(app: web.Application) -> None:
    app.router.add_get("/v1/sessions/{session_id}/agent", agent_socket)
    add_whep_routes(app)
