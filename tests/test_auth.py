"""Off loopback every API call needs the token; with it everything works as before; sessions are isolated.

The server listens on 0.0.0.0 (beyond loopback) and is called through 127.0.0.1: what decides is where the
server listens, not where this client sits.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request

import pytest

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT
from conftest import start_server, stop_server
from peer import Viewer

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def guarded():
    srv = start_server("auth.log", "--host", "0.0.0.0", env={"AVATAR_RT_TOKEN": TOKEN})
    yield srv
    stop_server(srv)


def api_routes(tmp_path) -> list[tuple[str, str]]:
    """Every /v1/ route the app serves, with its parameters filled in: a new route is covered by itself."""
    from avatar_rt.server.app import ServerConfig, create_app

    app = create_app(ServerConfig(avatar=DEFAULT_PORTRAIT, db=tmp_path / "routes.sqlite3"))
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/v1/") and route.method != "HEAD":
            routes.add((route.method, re.sub(r"\{[^}]+\}", "x" * 32, path)))
    return sorted(routes)


def call(base: str, method: str, path: str, token: str | None = None, body: bytes | None = b"{}") -> int:
    req = urllib.request.Request(base + path, data=body if method in ("POST", "PUT") else None, method=method,
                                 headers={"Content-Type": "application/json"})
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_every_api_call_is_401_without_the_token(guarded, tmp_path):
    routes = api_routes(tmp_path)
    assert len(routes) >= 15, routes
    for token in (None, "wrong", TOKEN + "x", ""):
        codes = {f"{m} {p}": call(guarded.base_url, m, p, token) for m, p in routes}
        assert set(codes.values()) == {401}, (token, codes)
    print(f"{len(routes)} API routes × 4 kinds of missing/wrong token: all 401")


def test_the_page_itself_needs_no_token(guarded):
    with urllib.request.urlopen(guarded.base_url + "/", timeout=10) as resp:
        assert resp.status == 200


def test_the_gallery_pictures_load_with_the_token_in_their_url(guarded):
    """The page's <img> elements cannot send a header: it puts the token in their URLs (web_client/avatars.js)."""
    import json

    req = urllib.request.Request(guarded.base_url + "/v1/avatars", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        listed = json.loads(resp.read())
    thumb = next(a["thumbnail"] for a in listed["avatars"] if a["default"])
    assert call(guarded.base_url, "GET", thumb) == 401
    with urllib.request.urlopen(f"{guarded.base_url}{thumb}?token={TOKEN}", timeout=30) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"


def test_with_the_token_everything_works_and_session_tokens_are_scoped(guarded):
    async def go():
        auth = {"Authorization": f"Bearer {TOKEN}"}
        a, b = Viewer(guarded.base_url, headers=auth), Viewer(guarded.base_url, headers=auth)
        await a.connect()
        await b.connect()
        await asyncio.sleep(2.0)
        fps = a.fps(1.5), b.fps(1.5)
        token_a, sid_a, sid_b = a.session["session_token"], a.session_id, b.session_id
        base = guarded.base_url
        loop = asyncio.get_running_loop()

        def codes():
            return {
                "own session": call(base, "GET", f"/v1/sessions/{sid_a}", token_a),
                "own edits": call(base, "GET", f"/v1/sessions/{sid_a}/edits", token_a),
                "own edit": call(base, "POST", f"/v1/sessions/{sid_a}/edits", token_a,
                                 b'{"set": {"emotion": {"happy": 0.4}}, "transition_ms": 0}'),
                "other session": call(base, "GET", f"/v1/sessions/{sid_b}", token_a),
                "other edit": call(base, "POST", f"/v1/sessions/{sid_b}/edits", token_a,
                                   b'{"set": {"emotion": {"sad": 1.0}}}'),
                "other delete": call(base, "DELETE", f"/v1/sessions/{sid_b}", token_a),
                "new session": call(base, "POST", "/v1/sessions", token_a),
                "metrics": call(base, "GET", "/v1/metrics", token_a),
                "server token, other session": call(base, "GET", f"/v1/sessions/{sid_b}", TOKEN),
            }
        got = await loop.run_in_executor(None, codes)
        # b edits itself over HTTP: a's control channel must hear nothing of it.
        await b.call("POST", f"/v1/sessions/{sid_b}/edits", {"set": {"emotion": {"surprised": 1.0}}})
        await asyncio.sleep(1.5)
        leaked = [m for m in a.messages if sid_b in str(m) or "surprised" in str(m.get("state", ""))]
        b_heard = [m for m in b.messages if "surprised" in str(m.get("state", ""))]
        await a.close()
        await b.close()
        return fps, got, leaked, b_heard

    fps, got, leaked, b_heard = asyncio.run(go())
    print(f"with the token: {fps[0]:.1f} and {fps[1]:.1f} fps; session-token scope: {got}")
    # Frames flow on both (two sessions at once on a shared, loaded 2-core machine ran 1.3–22 fps: the rate itself
    # is not this test's; tests/test_webrtc_loopback.py holds it).
    assert min(fps) > 0
    assert got == {"own session": 200, "own edits": 200, "own edit": 200, "other session": 401, "other edit": 401,
                   "other delete": 401, "new session": 401, "metrics": 401, "server token, other session": 200}
    assert not leaked, leaked
    assert b_heard, "the session that was edited should hear of it (else the isolation check proves nothing)"


def test_a_server_beyond_loopback_without_a_token_makes_one_and_prints_it():
    srv = start_server("auth-generated.log", "--host", "0.0.0.0")
    try:
        log = srv.log_path.read_text()
        found = re.search(r"this run's token is (\S+)", log)
        assert found, log
        token = found.group(1)
        assert f"?token={token}" in log, "the printed page URL should carry the token"
        assert call(srv.base_url, "GET", "/v1/health") == 401
        assert call(srv.base_url, "GET", "/v1/health", token) == 200
    finally:
        stop_server(srv)


def test_the_python_client_sends_the_token(guarded, monkeypatch):
    """avatar_rt.client against a token-guarded server: refused without a token; with `token=` or $AVATAR_RT_TOKEN
    it creates a session, edits it and attaches as its voice agent (the socket carries the token too)."""
    from avatar_rt.client import AvatarApiError, AvatarClient

    async def without() -> AvatarApiError:
        async with AvatarClient(guarded.base_url, token="") as client:
            try:
                await client.create_session()
            except AvatarApiError as exc:
                return exc
        raise AssertionError("the server accepted a call without the token")

    async def works(client: AvatarClient) -> tuple[int, str, str, str]:
        async with client:
            session = await client.create_session()
            ack = await client.edit(session.session_id, {"set": {"emotion": {"happy": 0.4}}})
            async with await client.connect_agent(session.session_id, sample_rate=16000) as agent:
                described = await agent.describe()
            url = client.watch_url(session)
            await client.delete_session(session.session_id)
            return ack["version"], described["type"], url, session.raw["session_token"]

    monkeypatch.delenv("AVATAR_RT_TOKEN", raising=False)
    refused = asyncio.run(without())
    assert refused.status == 401 and refused.code == "unauthorized", refused
    version, described, url, session_token = asyncio.run(works(AvatarClient(guarded.base_url, token=TOKEN)))
    assert version >= 1 and described and url.endswith(f"&token={session_token}")
    monkeypatch.setenv("AVATAR_RT_TOKEN", TOKEN)
    assert asyncio.run(works(AvatarClient(guarded.base_url)))[0] > version
