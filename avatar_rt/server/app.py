"""The aiohttp application: the web client, the avatar and session API, health and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from aiohttp import web
from aiortc import RTCSessionDescription

from avatar_rt import __version__
from avatar_rt.edits.schema import MAX_EDIT_BYTES
from avatar_rt.edits.store import EditStore
from avatar_rt.errors import AvatarRtError, NotFoundError
from avatar_rt.motion.factory import make_motion_model
from avatar_rt.agent.routes import add_agent_routes
from avatar_rt.server import memory, quiet_logs
from avatar_rt.server.auth import Auth, auth_middleware
from avatar_rt.server.avatar_routes import add_avatar_routes
from avatar_rt.server.avatars import AvatarStore
from avatar_rt.server.loop_lag import LoopLag
from avatar_rt.server.limits import Limits, SessionSlots, client_key, rate_limit_middleware, shorten_ice_consent
from avatar_rt.server.process_stats import process_stats
from avatar_rt.server.session import Session
from avatar_rt.server.uploads import read_image_upload

log = logging.getLogger(__name__)

WEB_CLIENT = Path(__file__).resolve().parents[2] / "web_client"
MAX_UPLOAD_BYTES = Limits.max_upload_bytes
MAX_JSON_BYTES = Limits.max_json_bytes


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "avatar_rt" / "avatar_rt.sqlite3"


@dataclass
class ServerConfig:
    avatar: Path
    fps: float = 25.0
    size: int = 512
    max_sessions: int = 4
    db: Path | None = None  # SQLite file for avatars, edits, history and presets; None: default_db_path()
    motion: str = "auto"  # which motion model drives the mouth (avatar_rt.motion.factory)
    behaviour: str = "auto"  # what drives head, brows and blinks (avatar_rt.motion.factory)
    limits: Limits = field(default_factory=Limits)  # rates, pending sessions, timeouts (limits.py)
    auth: Auth = field(default_factory=lambda: Auth(None))  # who may call /v1/ (auth.py)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except AvatarRtError as exc:
        return web.json_response(exc.to_json(), status=exc.status)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "body_too_large", f"the request body is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), f"{exc.reason}: {request.path}")
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal", "the server hit an unexpected error; other sessions are unaffected")


async def _json_body(request: web.Request, *, required: bool, limit: int = MAX_JSON_BYTES) -> dict:
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise AvatarRtError(f"the JSON body is larger than {limit // 1024} KiB", code="body_too_large",
                            status=413)
    if not raw.strip():
        if required:
            raise AvatarRtError("a JSON body is required", code="bad_json")
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise AvatarRtError(f"the body is not valid JSON: {exc}", code="bad_json") from exc
    if not isinstance(body, dict):
        raise AvatarRtError("the JSON body must be an object", code="bad_json")
    return body


def _warm_text_model() -> None:
    """Load the free-text model off the event loop, so the first text edit does not stall frames."""
    try:
        from avatar_rt.edits.text_edits import shared_editor

        shared_editor()
        log.info("free-text edits ready")
    except Exception as exc:  # free text is optional: everything else works without the model
        log.info("free-text edits unavailable: %s", exc)


class AvatarServer:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.store = EditStore(config.db or default_db_path())
        self.avatars = AvatarStore(config.size, store=self.store)
        self.default_avatar_id: str | None = None
        self.sessions: dict[str, Session] = {}
        self.slots = SessionSlots(replace(config.limits, max_sessions=config.max_sessions))
        self.started = time.time()
        self.loop_lag = LoopLag()  # how late the event loop runs, for every session at once (/v1/metrics)

    async def startup(self, app: web.Application) -> None:
        quiet_logs.install(asyncio.get_running_loop())
        self.loop_lag.start()
        avatar = await self.avatars.add(Path(self.config.avatar).read_bytes(), pinned=True)
        self.default_avatar_id = avatar.avatar_id
        log.info("default avatar %s ready (%s)", avatar.avatar_id, self.config.avatar)
        asyncio.get_running_loop().run_in_executor(None, _warm_text_model)
        memory.trim_soon(5.0)  # the avatar analysis's scratch memory, back to the system

    async def shutdown(self, app: web.Application) -> None:
        """SIGTERM or Ctrl-C: every peer is told (DTLS close), then the database is closed."""
        log.info("shutting down: closing %d session(s)", len(self.sessions))
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())), return_exceptions=True)
        self.store.close()
        self.loop_lag.stop()

    def _session(self, request: web.Request) -> Session:
        sid = request.match_info["session_id"]
        session = self.sessions.get(sid)
        if session is None:
            raise NotFoundError(f"no session with id {sid[:64]!r}", code="unknown_session")
        return session

    # --- avatars ---------------------------------------------------------
    async def create_avatar(self, request: web.Request) -> web.Response:
        data = await read_image_upload(request, self.config.limits.max_upload_bytes)
        avatar = await self.avatars.add(data)
        return web.json_response(avatar.describe(), status=201)

    async def get_avatar(self, request: web.Request) -> web.Response:
        return web.json_response((await self.avatars.get_or_restore(request.match_info["avatar_id"])).describe())

    async def get_avatar_image(self, request: web.Request) -> web.Response:
        avatar = await self.avatars.get_or_restore(request.match_info["avatar_id"])
        return web.Response(body=avatar.jpeg, content_type="image/jpeg")

    # --- sessions --------------------------------------------------------
    async def create_session(self, request: web.Request) -> web.Response:
        body = await _json_body(request, required=False)
        avatar_id = body.get("avatar_id", self.default_avatar_id)
        if not isinstance(avatar_id, str):
            raise AvatarRtError('"avatar_id" must be a string', code="bad_json")
        avatar = await self.avatars.get_or_restore(avatar_id)
        self.slots.check_capacity()
        cfg, seed = self.config, secrets.randbits(31)
        session = await Session.create(avatar, cfg.fps, self.store, self.avatars,
                                       lambda: make_motion_model(cfg.motion, cfg.fps, cfg.behaviour, seed=seed),
                                       edit_rate=cfg.limits.edit_rate)
        await session.prepare()
        self.sessions[session.session_id] = session
        session.on_closed.append(lambda s: (self.sessions.pop(s.session_id, None), self.slots.closed(s),
                                            memory.trim_soon()))
        self.slots.admit(session, client_key(request))
        return web.json_response({**session.describe(), **self.config.auth.grant(session.session_id)}, status=201)

    async def get_session(self, request: web.Request) -> web.Response:
        session = self._session(request)
        return web.json_response({**session.describe(), "metrics": session.snapshot()})

    async def offer(self, request: web.Request) -> web.Response:
        session = self._session(request)
        body = await _json_body(request, required=True)
        sdp, kind = body.get("sdp"), body.get("type", "offer")
        if not isinstance(sdp, str) or not sdp.lstrip().startswith("v=0"):
            raise AvatarRtError('"sdp" must be an SDP offer (text starting with "v=0")', code="bad_offer")
        if kind != "offer":
            raise AvatarRtError('"type" must be "offer"', code="bad_offer")
        self.slots.offered(session)
        answer = await session.answer(RTCSessionDescription(sdp=sdp, type="offer"))
        return web.json_response({"sdp": answer.sdp, "type": answer.type})

    # --- edits (the same API as the datachannel's edit messages) -------------
    async def edits_get(self, request: web.Request) -> web.Response:
        return web.json_response(await self._session(request).edit_async("edit.get", {}))

    async def edits_post(self, request: web.Request) -> web.Response:
        session = self._session(request)
        body = await _json_body(request, required=True, limit=MAX_EDIT_BYTES)
        return web.json_response(await session.edit_async("edit", body, from_http=True))

    async def edits_text(self, request: web.Request) -> web.Response:
        session = self._session(request)
        body = await _json_body(request, required=True, limit=MAX_EDIT_BYTES)
        return web.json_response(await session.edit_async("edit.text", body, from_http=True))

    async def edits_undo(self, request: web.Request) -> web.Response:
        session = self._session(request)
        body = await _json_body(request, required=False)
        return web.json_response(await session.edit_async("edit.undo", body, from_http=True))

    async def preset_save(self, request: web.Request) -> web.Response:
        session = self._session(request)
        return web.json_response(await session.edit_async("preset.save", {"name": request.match_info["name"]}), status=201)

    async def preset_apply(self, request: web.Request) -> web.Response:
        session = self._session(request)
        body = await _json_body(request, required=False)
        return web.json_response(await session.edit_async("preset.apply", {**body, "name": request.match_info["name"]}, from_http=True))

    async def presets(self, request: web.Request) -> web.Response:
        return web.json_response({"names": self.store.preset_names()})

    async def delete_session(self, request: web.Request) -> web.Response:
        await self._session(request).close()
        return web.Response(status=204)

    # --- health and metrics -----------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({
            "status": "ok",
            "version": __version__,
            "sessions": len(self.sessions),
            "max_sessions": self.config.max_sessions,
            "default_avatar": self.default_avatar_id,
        })

    async def metrics(self, request: web.Request) -> web.Response:
        load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        return web.json_response({
            "uptime_s": round(time.time() - self.started, 1),
            "load1": load1,
            "fps_target": self.config.fps,
            "sessions": {sid: {"state": s.state, **s.snapshot()} for sid, s in self.sessions.items()},
            "process": process_stats(),
            "event_loop": self.loop_lag.snapshot(),
        })

    async def index(self, request: web.Request) -> web.StreamResponse:
        page = WEB_CLIENT / "index.html"
        if not page.exists():
            return web.Response(text="avatar_rt is running; the web client is not installed", content_type="text/plain")
        return web.FileResponse(page)


def create_app(config: ServerConfig) -> web.Application:
    server = AvatarServer(config)
    shorten_ice_consent(config.limits.consent_timeout_s)
    app = web.Application(client_max_size=config.limits.max_upload_bytes, middlewares=[
        auth_middleware(config.auth), rate_limit_middleware(config.limits), error_middleware])
    app["server"] = server
    app.on_startup.append(server.startup)
    app.on_shutdown.append(server.shutdown)
    app.router.add_get("/", server.index)
    if WEB_CLIENT.is_dir():
        app.router.add_static("/web/", WEB_CLIENT)
    app.router.add_get("/v1/health", server.health)
    app.router.add_get("/v1/metrics", server.metrics)
    app.router.add_post("/v1/avatars", server.create_avatar)
    app.router.add_get("/v1/avatars/{avatar_id}", server.get_avatar)
    app.router.add_get("/v1/avatars/{avatar_id}/image", server.get_avatar_image)
    app.router.add_post("/v1/sessions", server.create_session)
    app.router.add_get("/v1/sessions/{session_id}", server.get_session)
    app.router.add_post("/v1/sessions/{session_id}/offer", server.offer)
    app.router.add_delete("/v1/sessions/{session_id}", server.delete_session)
    app.router.add_get("/v1/sessions/{session_id}/edits", server.edits_get)
    app.router.add_post("/v1/sessions/{session_id}/edits", server.edits_post)
    app.router.add_post("/v1/sessions/{session_id}/edits/text", server.edits_text)
    app.router.add_post("/v1/sessions/{session_id}/edits/undo", server.edits_undo)
    app.router.add_put("/v1/sessions/{session_id}/presets/{name}", server.preset_save)
    app.router.add_post("/v1/sessions/{session_id}/presets/{name}/apply", server.preset_apply)
    app.router.add_get("/v1/presets", server.presets)
    add_agent_routes(app)
    add_avatar_routes(app, server)  # list, thumbnail, delete (the web client's gallery)
    return app
