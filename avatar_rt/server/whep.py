"""WHEP egress (RFC 9725), POST /v1/sessions/{id}/whep: any standard WHEP player watches a session.

The player POSTs its SDP offer (`application/sdp`, receive-only audio and video); the
answer comes back as `201 Created` with the resource's URL in `Location`. aiortc gathers
its ICE candidates before answering, so no trickle (PATCH) is needed; the player ends
the viewing with DELETE on that URL. The WHEP viewer is the session's peer connection,
exactly like an offer to /offer: one viewer per session, and ending it ends the session.
"""

from __future__ import annotations

from aiohttp import web
from aiortc import RTCSessionDescription

from avatar_rt.errors import AvatarRtError

MAX_SDP_BYTES = 64 * 1024


async def whep_offer(request: web.Request) -> web.Response:
    session = request.app["server"]._session(request)
    if request.content_type != "application/sdp":
        raise AvatarRtError(f'a WHEP offer is sent as Content-Type "application/sdp", not "{request.content_type}"',
                            code="bad_offer", status=415)
    raw = await request.content.read(MAX_SDP_BYTES + 1)
    if len(raw) > MAX_SDP_BYTES:
        raise AvatarRtError(f"the SDP offer is larger than {MAX_SDP_BYTES // 1024} KiB", code="bad_offer", status=413)
    sdp = raw.decode("utf-8", errors="replace")
    if not sdp.lstrip().startswith("v=0"):
        raise AvatarRtError('the body must be an SDP offer (text starting with "v=0")', code="bad_offer")
    answer = await session.answer(RTCSessionDescription(sdp=sdp, type="offer"))
    resource = f"/v1/sessions/{session.session_id}/whep/viewer"
    return web.Response(status=201, text=answer.sdp, content_type="application/sdp",
                        headers={"Location": resource})


async def whep_delete(request: web.Request) -> web.Response:
    await request.app["server"]._session(request).close()
    return web.Response(status=200)


async def whep_patch(request: web.Request) -> web.Response:
    raise AvatarRtError("trickle ICE is not needed: the answer carries every candidate", code="not_supported",
                        status=405)


def add_whep_routes(app: web.Application) -> None:
    app.router.add_post("/v1/sessions/{session_id}/whep", whep_offer)
    app.router.add_delete("/v1/sessions/{session_id}/whep/viewer", whep_delete)
    app.router.add_patch("/v1/sessions/{session_id}/whep/viewer", whep_patch)
