"""The web client watching a session a voice agent drives (/?session=ID): real headless Chromium, no
microphone; the agent speaks over its socket and the page plays the video and sees the agent's events."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import espeak

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"needs {CHROMIUM} (Debian package chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e .[dev])")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_page_watches_an_agent_session(server, tmp_path):
    from avatar_rt.client import AvatarClient

    pcm, rate = espeak("Thank you for calling, how can I help?", tmp_path / "a.wav")

    async def create() -> str:
        async with AvatarClient(server.base_url) as client:
            return (await client.create_session()).session_id

    session_id = asyncio.run(create())
    result: dict = {}

    async def agent():
        async with AvatarClient(server.base_url) as client:
            async with await client.connect_agent(session_id, sample_rate=rate) as conn:
                await conn.set_state("listening")
                reply = await conn.say(np.asarray(pcm))
                result["finished"] = await conn.wait_finished(reply, timeout=30)
                await conn.set_state("listening")
                await asyncio.sleep(1.0)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--headless=new", "--disable-gpu", "--no-first-run",
                                           "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.goto(f"{server.base_url}/?session={session_id}")
            page.click("#start")
            page.wait_for_function("window.avatarClient.state === 'connected'", timeout=30_000)
            page.wait_for_function("() => { const v = document.getElementById('avatar');"
                                   " return v.videoWidth > 0 && v.currentTime > 0; }", timeout=30_000)
            thread = threading.Thread(target=lambda: asyncio.run(agent()))
            thread.start()
            page.wait_for_function("window.avatarClient.agentEvents.includes('playback.finished')", timeout=40_000)
            thread.join(30)
            client = page.evaluate("() => { const c = window.avatarClient; return {sessionId: c.sessionId, "
                                   "mic: c.mic, events: c.agentEvents, state: c.agentState, error: c.error}; }")
            played = page.evaluate("document.getElementById('avatar').currentTime")
        finally:
            browser.close()
    assert client["sessionId"] == session_id and client["mic"] is None, client  # watched, no microphone asked
    assert client["error"] is None, client
    assert "playback.started" in client["events"], client
    assert client["state"] == "idle", client  # the agent has left: the face went back to idle
    assert not result["finished"].interrupted and result["finished"].position_s > 1.5
    assert played > 2.0
