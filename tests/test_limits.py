"""Limits that hold under abuse (issue 16), against a real server with small limits and real aiortc peers.

Clients are told apart by source address: on Linux all of 127/8 is loopback, so a squatter at 127.0.0.2 and
a user at 127.0.0.1 are two clients of one machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import aiohttp
import pytest

from conftest import REPO, start_server, stop_server
from peer import Viewer

LIMITS = ["--max-sessions", "1", "--pending-ttl", "3", "--connect-timeout", "4", "--consent-timeout", "3",
          "--rate-sessions", "0.5,20", "--rate-edits", "1,4", "--rate-uploads", "0,1", "--max-upload-mb", "1",
          "--header-timeout", "3"]


@pytest.fixture(scope="module")
def limited():
    srv = start_server("limits.log", *LIMITS)
    yield srv
    stop_server(srv)


def run(coro):
    return asyncio.run(coro)


async def status_of(base: str, sid: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/v1/sessions/{sid}") as resp:
        return resp.status


# ------------------------------------------------------------------ uploads and bodies


@pytest.mark.parametrize("content_type,body", [
    ("multipart/form-data", os.urandom(500)),  # no boundary: once a 500
    ("multipart/form-data; boundary=xyz", os.urandom(500)),  # a boundary that never comes
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n"
     + os.urandom(300) + b"\r\n--xyz--\r\n"),
    ("application/octet-stream", os.urandom(3000)),
    ("image/jpeg", b"\xff\xd8\xff" + os.urandom(2000)),
])
def test_random_bytes_upload_is_415_not_an_image(limited, content_type, body):
    status, reply = limited.json("POST", "/v1/avatars", body, content_type)
    assert status == 415, reply
    assert reply["error"]["code"] == "not_an_image"


@pytest.mark.parametrize("content_type", ["image/jpeg", "multipart/form-data; boundary=xyz"])
def test_upload_past_the_limit_is_413(limited, content_type):
    big = os.urandom(int(1.5 * 2**20))
    if content_type.startswith("multipart"):
        big = b"--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n" + big + b"\r\n--xyz--\r\n"
    status, reply = limited.json("POST", "/v1/avatars", big, content_type)
    assert status == 413, reply
    assert "1 MiB" in reply["error"]["message"]


def test_upload_streamed_without_length_past_the_limit_is_413(limited):
    async def go():
        async def chunks():
            for _ in range(40):
                yield b"\x00" * 65536  # 2.5 MiB, chunked: no Content-Length to refuse up front
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{limited.base_url}/v1/avatars", data=chunks(),
                                 headers={"Content-Type": "image/png"}) as resp:
                return resp.status
    assert run(go()) == 413


# ------------------------------------------------------------------ slots


def test_squatter_with_twenty_unoffered_sessions_does_not_lock_out_a_real_client(limited):
    """--max-sessions 1 and one client creating 20 sessions it never offers: a new real client connects."""
    async def go():
        squatter = Viewer(limited.base_url, source="127.0.0.2")
        created = []
        for _ in range(20):
            status, reply = await squatter.call("POST", "/v1/sessions", {})
            assert status == 201, reply
            created.append(reply["session_id"])
        alive = [sid for sid in created if (await squatter.call("GET", f"/v1/sessions/{sid}"))[0] == 200]
        await squatter.http().close()
        user = Viewer(limited.base_url, source="127.0.0.1")
        await user.connect()
        await asyncio.sleep(2.0)
        frames = len(user.frames)
        await user.close()
        return created, alive, frames

    created, alive, frames = run(go())
    print(f"squatter: {len(created)} sessions created, {len(alive)} still held (--pending-per-client 4); "
          f"then a real client connected and got {frames} frames in 2 s")
    assert alive == created[-4:], "the squatter's oldest un-offered sessions should have been reclaimed"
    assert frames >= 2, "the real client connected but no video came"


def test_rate_limited_session_creation_says_when_to_retry(limited):
    async def go():
        client = Viewer(limited.base_url, source="127.0.0.3")
        for _ in range(30):
            async with client.http().post(f"{limited.base_url}/v1/sessions", json={}) as resp:
                if resp.status == 429:
                    body = await resp.json()
                    await client.http().close()
                    return resp.headers.get("Retry-After"), body
        await client.http().close()
        return None, None

    retry_after, body = run(go())
    assert retry_after is not None and int(retry_after) >= 1
    assert body["error"]["code"] == "rate_limited" and "retry in" in body["error"]["message"]


def test_unoffered_session_expires(limited):
    status, session = limited.json("POST", "/v1/sessions", {})
    assert status == 201
    time.sleep(4.5)  # --pending-ttl 3
    assert limited.json("GET", f"/v1/sessions/{session['session_id']}")[0] == 404


def test_offer_whose_connection_never_completes_is_reclaimed(limited):
    """The client offers, then disappears before ICE completes: the slot comes back after --connect-timeout."""
    async def go():
        ghost = Viewer(limited.base_url, source="127.0.0.4")
        status, ghost.session = await ghost.call("POST", "/v1/sessions", {})
        ghost.pc.addTransceiver("video", direction="recvonly")
        await ghost.pc.setLocalDescription(await ghost.pc.createOffer())
        offer = {"sdp": ghost.pc.localDescription.sdp, "type": "offer"}
        await ghost.pc.close()  # gone: its candidates answer nothing
        status, _ = await ghost.call("POST", f"/v1/sessions/{ghost.session_id}/offer", offer)
        assert status == 200
        await ghost.http().close()
        t0 = time.monotonic()
        while await status_of(limited.base_url, ghost.session_id) == 200:
            await asyncio.sleep(0.25)
            assert time.monotonic() - t0 < 15, "the half-open session was never reclaimed"
        gone_after = time.monotonic() - t0
        user = Viewer(limited.base_url)
        await user.connect()
        await user.close()
        return gone_after

    gone_after = run(go())
    print(f"half-open session reclaimed after {gone_after:.1f} s")
    assert gone_after <= 4 + 2


VANISHING_CLIENT = """
import asyncio, sys
sys.path.insert(0, "tests")
from peer import Viewer
async def main():
    v = Viewer(sys.argv[1])
    await v.connect()
    print(v.session_id, flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_client_killed_without_delete_frees_its_slot(limited):
    """A client process killed outright (no DELETE, no DTLS close): ICE consent notices, the slot comes back."""
    proc = subprocess.Popen([sys.executable, "-c", VANISHING_CLIENT, limited.base_url], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        sid = proc.stdout.readline().strip()
        assert len(sid) == 32, "the client did not connect"
        time.sleep(1.0)
        assert limited.json("GET", f"/v1/sessions/{sid}")[1]["state"] == "connected"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    t0 = time.monotonic()
    while limited.json("GET", f"/v1/sessions/{sid}")[0] == 200:
        time.sleep(0.25)
        assert time.monotonic() - t0 < 20, "the vanished client's session was never closed"
    gone_after = time.monotonic() - t0
    print(f"vanished client's session closed {gone_after:.1f} s after the kill")
    assert gone_after <= 3 * 1.2 + 3  # --consent-timeout 3, checks jittered ±20 %, one check's own timeout

    async def then_a_new_client_connects():
        user = Viewer(limited.base_url)
        await user.connect()
        await user.close()
    run(then_a_new_client_connects())


def test_edits_are_rate_limited_per_client(limited):
    async def go():
        user = Viewer(limited.base_url, source="127.0.0.5")
        await user.connect()
        codes = [(await user.call("POST", f"/v1/sessions/{user.session_id}/edits",
                                  {"set": {"emotion": {"happy": 0.5}}, "transition_ms": 0}))[0] for _ in range(8)]
        await user.close()
        return codes

    codes = run(go())
    print(f"8 edits at once with --rate-edits 1,4: {codes}")
    assert codes[:4] == [200] * 4 and 429 in codes[4:]


def test_slow_loris_client_trickling_headers_is_cut_off(limited):
    """A client sending one header line a second never finishes its request: --header-timeout 3 closes it,
    and the server answers everyone else meanwhile."""
    host, port = limited.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        t0 = time.monotonic()
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        closed_after = None
        for i in range(20):
            try:
                sock.sendall(f"X-Slow-{i}: {'a' * 10}\r\n".encode())
                with urllib.request.urlopen(limited.base_url + "/v1/health", timeout=5) as resp:
                    assert resp.status == 200  # everyone else is served meanwhile
                sock.settimeout(1.0)
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except socket.timeout:
                continue  # still open: trickle on
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - t0
                break
    print(f"slow-loris connection closed {closed_after} s after it opened (--header-timeout 3)")
    assert closed_after is not None and closed_after < 3 + 2.5, "the trickling connection was kept open"


def test_health_without_limits_headers_is_not_rate_limited(limited):
    for _ in range(50):
        with urllib.request.urlopen(limited.base_url + "/v1/health", timeout=5) as resp:
            assert resp.status == 200


def test_control_channel_edit_flood_is_refused_with_a_message_and_harms_no_one():
    """A page flooding edits over its datachannel: past --rate-edits it gets `rate_limited` errors on the channel,
    its video goes on, and another session's edits and video are untouched."""
    srv = start_server("limits_flood.log", "--max-sessions", "2", "--rate-edits", "5,10")

    async def go():
        flooder, other = Viewer(srv.base_url), Viewer(srv.base_url)
        await flooder.connect()
        await other.connect()
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        for i in range(300):
            flooder.channel.send(json.dumps({"type": "edit", "id": i, "set": {"lip_scale": 1.0 + (i % 5) / 10}}))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # let SCTP drain, as a browser's send buffer would
        deadline = time.monotonic() + 30
        replies = lambda: [m for m in flooder.messages if m.get("id") in range(300)]  # noqa: E731
        while len(replies()) < 300 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        flood_s = time.monotonic() - t0
        other.channel.send(json.dumps({"type": "edit", "id": "other", "set": {"emotion": {"happy": 0.5}}}))
        flooder.channel.send(json.dumps({"type": "ping", "id": "after"}))
        await asyncio.sleep(2.0)
        # Frames over the flood and the 2 s after it (the flood itself may last half a second).
        window = time.monotonic() - t0
        during = [sum(1 for t in v.frames if t >= t0) / window for v in (flooder, other)]
        result = replies(), flood_s, during, list(other.messages), list(flooder.messages)
        await flooder.close()
        await other.close()
        return result

    try:
        replies, flood_s, (fps_flooder, fps_other), other_messages, flooder_messages = run(go())
    finally:
        stop_server(srv)
    acks = [m for m in replies if m.get("type") == "edit.ack"]
    refused = [m for m in replies if m.get("code") == "rate_limited"]
    print(f"300 edits over the channel in {flood_s:.1f} s with --rate-edits 5,10: {len(acks)} applied, "
          f"{len(refused)} refused; fps over it and 2 s after: flooder {fps_flooder:.1f}, other session {fps_other:.1f}")
    assert len(replies) == 300, "every edit gets an answer"
    assert 10 <= len(acks) <= 10 + 5 * flood_s + 2 and len(acks) + len(refused) == 300
    assert "too many edits on this session's channel" in refused[0]["message"] and "retry in" in refused[0]["message"]
    assert any(m.get("type") == "pong" and m.get("id") == "after" for m in flooder_messages)
    assert any(m.get("type") == "edit.ack" and m.get("id") == "other" for m in other_messages), \
        "the other session's edit was refused or lost"
    assert fps_flooder > 0 and fps_other > 0, "video stopped during the flood"  # its rate: benchmarks/fuzz_fps.py
