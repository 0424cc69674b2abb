"""The agent WebSocket against a real server: segments play at real time, events come back exactly once,
bad input gets a clear error, and a viewer (a real aiortc peer) hears the agent's voice."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from avatar_rt.rtc_frames import received_frames

from conftest import espeak


@pytest.fixture(scope="module")
def tts_22k(tmp_path_factory) -> np.ndarray:
    """espeak-ng's own output: 22.05 kHz, as a TTS would push it."""
    pcm, rate = espeak("Thank you for calling. How can I help you today?", tmp_path_factory.mktemp("tts") / "a.wav")
    assert rate == 22050
    return pcm


async def _events_until(ws, predicate, timeout: float = 20.0) -> list[dict]:
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        event = json.loads(msg.data)
        got.append(event)
        if predicate(event):
            return got
    raise AssertionError(f"timed out; got {got}")


async def _offer(pc, http, base_url: str, sid: str) -> None:
    """The viewer's offer/answer exchange on /offer."""
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(f"{base_url}/v1/sessions/{sid}/offer",
                         json={"sdp": pc.localDescription.sdp, "type": "offer"}) as resp:
        answer = await resp.json()
    await pc.setRemoteDescription(RTCSessionDescription(**answer))


async def _new_session(http, base_url: str) -> str:
    async with http.post(f"{base_url}/v1/sessions", json={}) as resp:
        assert resp.status == 201
        return (await resp.json())["session_id"]


def test_a_segment_plays_at_real_time_and_finishes_once(server, tts_22k):
    duration = len(tts_22k) / 22050

    async def run():
        async with aiohttp.ClientSession() as http:
            sid = await _new_session(http, server.base_url)
            async with http.ws_connect(f"{server.base_url}/v1/sessions/{sid}/agent?sample_rate=22050") as ws:
                hello = await _events_until(ws, lambda e: e["type"] == "session")
                assert hello[-1]["sample_rate"] == 22050
                t0 = time.monotonic()
                await ws.send_json({"type": "segment.start", "id": "reply-1", "text": "Thank you for calling."})
                for i in range(0, len(tts_22k), 4410):  # pushed all at once: far faster than real time
                    await ws.send_bytes(tts_22k[i:i + 4410].tobytes())
                await ws.send_json({"type": "segment.end", "id": "reply-1"})
                events = await _events_until(ws, lambda e: e["type"] == "playback.finished")
                elapsed = time.monotonic() - t0
                await asyncio.sleep(0.3)
                await ws.send_json({"type": "agent.get", "id": 7})
                state = await _events_until(ws, lambda e: e["type"] == "agent")
            return events, elapsed, state[-1]

    events, elapsed, state = asyncio.run(run())
    kinds = [e["type"] for e in events]
    assert kinds.count("playback.started") == 1 and kinds.count("playback.finished") == 1
    assert kinds.index("playback.started") < kinds.index("playback.finished")
    finished = events[-1]
    assert finished["id"] == "reply-1" and finished["interrupted"] is False
    assert finished["position_s"] == pytest.approx(duration, abs=0.01)
    assert elapsed >= duration - 0.05, "played at real time, not as fast as it was pushed"
    assert {"type": "agent.state", "state": "speaking"}.items() <= next(
        e for e in events if e["type"] == "agent.state").items()
    assert state["state"] == "idle" and state["segments"] == [] and state["buffered_s"] == 0 and state["id"] == 7


def test_bad_input_gets_clear_errors_and_harms_nothing(server, tts_22k):
    async def run():
        async with aiohttp.ClientSession() as http:
            sid = await _new_session(http, server.base_url)
            other = await _new_session(http, server.base_url)
            errors = {}
            async with http.ws_connect(f"{server.base_url}/v1/sessions/{sid}/agent") as ws, \
                    http.ws_connect(f"{server.base_url}/v1/sessions/{other}/agent") as ws2:
                await _events_until(ws, lambda e: e["type"] == "session")
                await _events_until(ws2, lambda e: e["type"] == "session")
                await ws2.send_json({"type": "segment.start", "id": "ok"})
                await ws2.send_bytes(np.full(8000, 900, np.int16).tobytes())
                await ws2.send_json({"type": "segment.end", "id": "ok"})

                async def expect(send, code):
                    await send()
                    (event,) = (await _events_until(ws, lambda e: e["type"] == "error"))[-1:]
                    assert event["code"] == code, event
                    errors[code] = event["message"]

                await expect(lambda: ws.send_bytes(b"\x00\x01"), "no_open_segment")
                await expect(lambda: ws.send_str("{not json"), "bad_json")
                await expect(lambda: ws.send_str("[1, 2]"), "bad_json")
                await expect(lambda: ws.send_json({"type": "config", "sample_rate": 44100}), "bad_rate")
                await expect(lambda: ws.send_json({"type": "segment.end", "id": "ghost"}), "unknown_segment")
                await expect(lambda: ws.send_json({"type": "dance"}), "unknown_type")
                await ws.send_json({"type": "segment.start", "id": "a", "sample_rate": 16000})
                await expect(lambda: ws.send_bytes(b"\x00\x01\x02"), "odd_byte_count")
                await expect(lambda: ws.send_json({"type": "config", "sample_rate": 24000}), "wrong_rate")
                await ws.send_bytes(np.full(1600, 500, np.int16).tobytes())
                await ws.send_json({"type": "segment.end", "id": "a"})
                await expect(lambda: ws.send_bytes(b"\x00\x01"), "push_after_end")
                await expect(lambda: ws.send_json({"type": "segment.start", "id": "a"}), "duplicate_segment")
                await expect(lambda: ws.send_json({"type": "state", "state": "asleep"}), "bad_state")
                # The valid segment still played, and finished once.
                done = await _events_until(ws, lambda e: e["type"] == "playback.finished")
                assert done[-1]["id"] == "a" and done[-1]["position_s"] == pytest.approx(0.1, abs=1e-3)
                # A second agent on the same session is refused before the upgrade; the first keeps working.
                async with http.get(f"{server.base_url}/v1/sessions/{sid}/agent",
                                    headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                             "Sec-WebSocket-Version": "13",
                                             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as resp:
                    assert resp.status == 409
                    assert (await resp.json())["error"]["code"] == "agent_connected"
                other_done = await _events_until(ws2, lambda e: e["type"] == "playback.finished")
                assert other_done[-1]["id"] == "ok" and other_done[-1]["interrupted"] is False
                # Disconnect mid-segment: the segment ends cleanly for the next agent to see nothing stuck.
                await ws.send_json({"type": "segment.start", "id": "cut"})
                await ws.send_bytes(np.full(16000, 500, np.int16).tobytes())
            async with http.ws_connect(f"{server.base_url}/v1/sessions/{sid}/agent") as ws:
                hello = await _events_until(ws, lambda e: e["type"] == "session")
                assert hello[-1]["segments"] == [] and hello[-1]["state"] == "idle"
            async with http.get(f"{server.base_url}/v1/sessions/unknown/agent") as resp:
                assert resp.status == 404
            async with http.get(f"{server.base_url}/v1/sessions/{other}") as resp:
                assert resp.status == 200
            return errors

    errors = asyncio.run(run())
    assert "16000, 22050, 24000, 48000" in errors["bad_rate"]
    assert "even number of bytes" in errors["odd_byte_count"]
    assert "segment.start" in errors["push_after_end"]


def test_a_viewer_hears_the_agents_voice(server, tts_22k):
    """A real aiortc viewer: the audio track carries the agent's speech, on the frames' clock."""

    async def run():
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        received: list[tuple[float, float]] = []  # (arrival, rms)
        frames = []

        async def read(track):
            import av

            resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
            async for frame in received_frames(track):
                if track.kind == "video":
                    frames.append(time.monotonic())
                    continue
                for f in resampler.resample(frame):
                    x = f.to_ndarray().reshape(-1).astype(np.float64)
                    received.append((time.monotonic(), float(np.sqrt(np.mean(x * x)))))

        tasks = []
        pc.on("track", lambda t: tasks.append(asyncio.ensure_future(read(t))))
        async with aiohttp.ClientSession() as http:
            sid = await _new_session(http, server.base_url)
            await _offer(pc, http, server.base_url, sid)
            for _ in range(100):
                if pc.connectionState == "connected":
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            async with http.ws_connect(f"{server.base_url}/v1/sessions/{sid}/agent?sample_rate=22050") as ws:
                await ws.send_json({"type": "segment.start", "id": "hello"})
                await ws.send_bytes(tts_22k.tobytes())
                await ws.send_json({"type": "segment.end", "id": "hello"})
                events = await _events_until(ws, lambda e: e["type"] == "playback.finished")
            await asyncio.sleep(0.5)
            await http.delete(f"{server.base_url}/v1/sessions/{sid}")
        await pc.close()
        for t in tasks:
            t.cancel()
        return received, frames, events

    received, frames, events = asyncio.run(run())
    started = next(e for e in events if e["type"] == "playback.started")["server_time"]
    finished = events[-1]["server_time"]
    # Video kept coming through the reply (the loaded 2-core machine renders fewer frames: it drops, by design).
    offset = time.time() - time.monotonic()
    assert len(frames) >= 5 and min(frames) + offset < started and max(frames) + offset > finished - 0.5
    # Loud audio arrived between started and finished (server_time is wall time; same machine).
    loud = [t + offset for t, rms in received if rms > 300]
    assert len(loud) > 0.5 * (finished - started) * 50, f"{len(loud)} loud 20 ms frames"
    assert min(loud) > started - 0.3 and max(loud) < finished + 0.5
    before = [rms for t, rms in received if t + offset < started - 0.3]
    assert before and max(before) < 100, "silence before the agent spoke (no microphone on this viewer)"


def test_the_python_client_speaks_interrupts_and_edits(server, tts_22k):
    """avatar_rt.client end to end: say, wait, barge in on a second reply, time an edit to a reply."""
    from avatar_rt.client import AvatarApiError, AvatarClient, PlaybackFinished, PlaybackStarted

    async def run():
        async with AvatarClient(server.base_url) as client:
            session = await client.create_session()
            async with await client.connect_agent(session.session_id, sample_rate=22050) as agent:
                assert agent.session["sample_rate"] == 22050
                await agent.set_state("thinking")
                info = await agent.describe()
                ack = await agent.edit({"set": {"emotion": {"happy": 0.7}}, "at": info["queue_ends_at_s"]})
                assert ack["type"] == "edit.ack" and ack["state"]["emotion"] == {"happy": 0.7}
                first = await agent.say(tts_22k[: 22050], text="Thank you")
                done = await agent.wait_finished(first, timeout=15)
                assert done.position_s == pytest.approx(1.0, abs=0.01) and not done.interrupted
                second = await agent.say(tts_22k)
                events = []
                async for event in agent.events():
                    events.append(event)
                    if isinstance(event, PlaybackStarted) and event.id == second:
                        await asyncio.sleep(0.5)
                        await agent.clear()
                    if isinstance(event, PlaybackFinished) and event.id == second:
                        break
                with pytest.raises(AvatarApiError) as info:
                    await agent.edit({"set": {"emotion": {"giddy": 1}}})
                assert info.value.code == "unknown_emotion"
            await client.edit(session.session_id, {"set": {"emotion": {"neutral": 1}}})
            await client.delete_session(session.session_id)
            return events, agent.state

    events, state = asyncio.run(run())
    first_started, second_started = [e for e in events if isinstance(e, PlaybackStarted)]
    finished = events[-1]
    assert finished.interrupted and 0.4 < finished.position_s < 0.8, finished
    # Media times on the frames' clock: the second reply starts after the first's second of audio.
    assert second_started.media_time_s - first_started.media_time_s >= 1.0
    assert state in ("thinking", "listening")  # after the barge-in, not stuck in speaking


def test_a_whep_player_watches_a_session_an_agent_drives(server, tts_22k):
    """WHEP (RFC 9725) with a real aiortc player: POST application/sdp → 201 + Location, video and the
    agent's voice arrive, DELETE ends it. (GStreamer's whepsrc is not packaged in Debian.)"""

    async def run():
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        got = {"video": 0, "loud_audio": 0}

        async def read(track):
            async for frame in received_frames(track):
                if track.kind == "video":
                    got["video"] += 1
                elif np.abs(frame.to_ndarray()).max() > 1000:
                    got["loud_audio"] += 1

        tasks = []
        pc.on("track", lambda t: tasks.append(asyncio.ensure_future(read(t))))
        async with aiohttp.ClientSession() as http:
            sid = await _new_session(http, server.base_url)
            async with http.post(f"{server.base_url}/v1/sessions/{sid}/whep", data="v=0 not sdp",
                                 headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 415
            async with http.ws_connect(f"{server.base_url}/v1/sessions/{sid}/agent?sample_rate=22050") as ws:
                await pc.setLocalDescription(await pc.createOffer())
                async with http.post(f"{server.base_url}/v1/sessions/{sid}/whep", data=pc.localDescription.sdp,
                                     headers={"Content-Type": "application/sdp"}) as resp:
                    assert resp.status == 201 and resp.content_type == "application/sdp"
                    location = resp.headers["Location"]
                    answer = await resp.text()
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                for _ in range(100):
                    if pc.connectionState == "connected":
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)
                await ws.send_json({"type": "segment.start", "id": "w"})
                await ws.send_bytes(tts_22k.tobytes())
                await ws.send_json({"type": "segment.end", "id": "w"})
                await _events_until(ws, lambda e: e["type"] == "playback.finished")
            async with http.delete(server.base_url + location) as resp:
                assert resp.status == 200
            async with http.get(f"{server.base_url}/v1/sessions/{sid}") as resp:
                assert resp.status == 404, "DELETE on the WHEP resource ended the session"
        await pc.close()
        for t in tasks:
            t.cancel()
        return got

    got = asyncio.run(run())
    # Video (a 2-core machine under other load renders only a few fps: it drops frames by design) and the voice.
    assert got["video"] >= 5 and got["loud_audio"] > 20, got


def test_a_session_closed_under_its_agent_ends_the_segments_and_the_socket(server):
    async def run():
        async with aiohttp.ClientSession() as http:
            sid = await _new_session(http, server.base_url)
            async with http.ws_connect(f"{server.base_url}/v1/sessions/{sid}/agent") as ws:
                await _events_until(ws, lambda e: e["type"] == "session")
                await ws.send_json({"type": "segment.start", "id": "long"})
                await ws.send_bytes(np.full(16000 * 5, 700, np.int16).tobytes())
                await _events_until(ws, lambda e: e["type"] == "playback.started")
                await http.delete(f"{server.base_url}/v1/sessions/{sid}")
                events = await _events_until(ws, lambda e: e["type"] == "session.closed", timeout=5)
                closing = await ws.receive(timeout=5)
            return events, closing

    events, closing = asyncio.run(run())
    (finished,) = [e for e in events if e["type"] == "playback.finished"]
    assert finished["id"] == "long" and finished["interrupted"] and finished["position_s"] < 5
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)


def test_the_control_datachannel_speaks_the_same_protocol(server):
    """A browser agent: segment messages and binary PCM on `control`, events back on it."""

    async def run():
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        channel = pc.createDataChannel("control")
        got: list[dict] = []
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", lambda m: got.append(json.loads(m)))
        pc.on("track", lambda t: None)
        async with aiohttp.ClientSession() as http:
            sid = await _new_session(http, server.base_url)
            await _offer(pc, http, server.base_url, sid)
            await asyncio.wait_for(opened.wait(), 20)
            channel.send(json.dumps({"type": "segment.start", "id": "dc", "sample_rate": 16000}))
            for i in range(4):
                channel.send(np.full(4000, 800, np.int16).tobytes())  # 1 s in four binary messages
            channel.send(b"\x00\x01\x02")
            channel.send(json.dumps({"type": "segment.end", "id": "dc"}))
            deadline = time.monotonic() + 20
            while not any(m.get("type") == "playback.finished" for m in got) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await http.delete(f"{server.base_url}/v1/sessions/{sid}")
        await pc.close()
        return got

    got = asyncio.run(run())
    kinds = [m["type"] for m in got]
    assert "playback.started" in kinds
    (finished,) = [m for m in got if m["type"] == "playback.finished"]
    assert finished["id"] == "dc" and finished["position_s"] == pytest.approx(1.0, abs=1e-3)
    assert any(m["type"] == "error" and m["code"] == "odd_byte_count" for m in got)
