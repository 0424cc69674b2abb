"""Per-session resources are released on close (issue 16): once a client has left, politely or not, nothing
keeps its session, peer connection, pipeline or tracks alive, and the server is back to its thread count.

The server runs in this process (aiohttp's AppRunner on a real port; a real aiortc client) so the test can
hold weak references to the server's own objects and see them go.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import pytest
from aiohttp import web

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT
from avatar_rt.server.app import ServerConfig, create_app
from conftest import free_port
from peer import Viewer


@pytest.mark.parametrize("polite", [True, False], ids=["delete", "no-delete"])
def test_closed_session_leaves_nothing_alive(tmp_path, polite):
    async def go():
        app = create_app(ServerConfig(avatar=DEFAULT_PORTRAIT, db=tmp_path / "release.sqlite3"))
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        server = app["server"]
        try:
            # One session first: the shared pools and caches it starts are the baseline, not a leak.
            warm = Viewer(f"http://127.0.0.1:{port}")
            await warm.connect()
            await asyncio.sleep(0.5)
            await warm.close()
            await asyncio.sleep(1.0)
            threads_before = threading.active_count()

            viewer = Viewer(f"http://127.0.0.1:{port}")
            await viewer.connect()
            await asyncio.sleep(1.0)
            assert len(viewer.frames) > 5
            session = server.sessions[viewer.session_id]
            refs = {name: weakref.ref(obj) for name, obj in (
                ("session", session), ("peer connection", session.pc), ("pipeline", session.pipeline),
                ("video track", session.video), ("audio track", session.audio), ("ingress", session.ingress))}
            del session
            await viewer.close(delete=polite)
            for _ in range(100):
                if not server.sessions:
                    break
                await asyncio.sleep(0.1)
            assert not server.sessions, "the session was not closed after its client left"
            await asyncio.sleep(1.0)  # aiortc's transports wind down
            gc.collect()
            alive = [name for name, ref in refs.items() if ref() is not None]
            if alive:
                holders = [type(r).__name__ for r in gc.get_referrers(refs[alive[0]]()) if r is not refs]
                raise AssertionError(f"still alive after close: {alive}; {alive[0]} held by {holders[:8]}")
            sid = viewer.session_id
            return threads_before, [t.name for t in threading.enumerate()], sid
        finally:
            await runner.cleanup()

    threads_before, names, sid = asyncio.run(go())
    print(f"threads: {threads_before} after the first session, {len(names)} after the second closed: {names}")
    # Shared pools grow lazily to their bound; what must not remain is a thread of the closed session's own.
    assert not [n for n in names if sid[:6] in n], names
    from avatar_rt.server.workers import render_pool

    assert sum(n.startswith("render") for n in names) <= render_pool()._max_workers
