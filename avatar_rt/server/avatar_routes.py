"""The avatar gallery's endpoints: list the avatars on the server, their thumbnails, delete one.

Upload and description stay with the app (POST /v1/avatars, GET /v1/avatars/{id}); these
read the same AvatarStore and its SQLite rows, so they hold no state of their own.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from aiohttp import web

from avatar_rt.errors import AvatarRtError

if TYPE_CHECKING:
    from avatar_rt.server.app import AvatarServer

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(LIST_LIMIT_DEFAULT))
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise AvatarRtError(f'"limit" must be a whole number from 1 to {LIST_LIMIT_MAX}, got {raw[:32]!r}',
                            code="bad_query")
    return limit


class AvatarGallery:
    def __init__(self, server: AvatarServer):
        self.server = server

    def _in_use(self, avatar_id: str) -> bool:
        return any(s.avatar.avatar_id == avatar_id and s.state != "closed" for s in self.server.sessions.values())

    async def list(self, request: web.Request) -> web.Response:
        limit = _limit(request)
        rows = self.server.avatars.listing()
        default = self.server.default_avatar_id
        store = self.server.store
        avatars = []
        for avatar_id, created in rows[:limit]:
            avatars.append({
                "avatar_id": avatar_id,
                "default": avatar_id == default,
                "uploaded": datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="seconds"),
                "edits_version": store.load(avatar_id)[1],
                "thumbnail": f"/v1/avatars/{avatar_id}/thumbnail",
                "image": f"/v1/avatars/{avatar_id}/image",
            })
        return web.json_response({"avatars": avatars, "total": len(rows), "default_avatar": default})

    async def thumbnail(self, request: web.Request) -> web.Response:
        thumb = await self.server.avatars.thumbnail(request.match_info["avatar_id"])
        # The id is the photo's content hash: the thumbnail of an id never changes.
        return web.Response(body=thumb, content_type="image/jpeg",
                            headers={"Cache-Control": "public, max-age=86400, immutable"})

    async def delete(self, request: web.Request) -> web.Response:
        avatar_id = request.match_info["avatar_id"]
        if avatar_id == self.server.default_avatar_id:
            raise AvatarRtError("the server's default avatar cannot be deleted (it is set by `serve --avatar`)",
                                code="default_avatar", status=409)
        if not self.server.avatars.known(avatar_id):
            self.server.avatars.get(avatar_id)  # raises unknown_avatar (404)
        if self._in_use(avatar_id):
            raise AvatarRtError("a call is using this avatar; stop it (DELETE /v1/sessions/{id}) and try again",
                                code="avatar_in_use", status=409)
        self.server.avatars.delete(avatar_id)
        return web.Response(status=204)


def add_avatar_routes(app: web.Application, server: AvatarServer) -> None:
    gallery = AvatarGallery(server)
    app.router.add_get("/v1/avatars", gallery.list)
    app.router.add_get("/v1/avatars/{avatar_id}/thumbnail", gallery.thumbnail)
    app.router.add_delete("/v1/avatars/{avatar_id}", gallery.delete)
