"""Bad input gets a clear 4xx with a message, and a live session streaming beside it is untouched."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib

import aiohttp
import cv2
import numpy as np
import pytest

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT
from rtc_client import run_call


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` (its pixel data is a stub): decoding must never start."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def no_face_photo() -> bytes:
    # A real photograph with no face in it: the sky and space shuttle model at
    # the right of the bundled portrait's source, upscaled.
    portrait = cv2.imread(str(DEFAULT_PORTRAIT))
    return jpeg(cv2.resize(portrait[0:200, 380:512], (400, 600)))


def two_faces_photo() -> bytes:
    portrait = cv2.imread(str(DEFAULT_PORTRAIT))
    return jpeg(np.concatenate([portrait, cv2.flip(portrait, 1)], axis=1))


def assert_error(status: int, body: dict | None, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["error"]["code"] == code
    assert len(body["error"]["message"]) > 10, "the message should tell the user what to do"


def test_not_an_image(server):
    status, body = server.json("POST", "/v1/avatars", b"this is plain text, not a picture", "image/jpeg")
    assert_error(status, body, 415, "not_an_image")


def test_photo_without_a_face(server):
    status, body = server.json("POST", "/v1/avatars", no_face_photo(), "image/jpeg")
    assert_error(status, body, 422, "no_face")


def test_photo_with_two_faces(server):
    status, body = server.json("POST", "/v1/avatars", two_faces_photo(), "image/jpeg")
    assert_error(status, body, 422, "multiple_faces")


def test_huge_image_is_refused_before_decoding(server):
    status, body = server.json("POST", "/v1/avatars", png_header_only(20_000, 20_000), "image/png")
    assert_error(status, body, 413, "image_too_large")
    assert "20000" in body["error"]["message"]


def test_upload_creates_an_avatar_a_session_can_use(server):
    portrait = cv2.imread(str(DEFAULT_PORTRAIT))
    # A different crop and size of the same photo: a new avatar, face off centre.
    status, avatar = server.json("POST", "/v1/avatars", jpeg(cv2.resize(portrait[40:, 60:], (700, 630))), "image/jpeg")
    assert status == 201, avatar
    assert avatar["width"] == avatar["height"] == 512
    status, session = server.json("POST", "/v1/sessions", {"avatar_id": avatar["avatar_id"]})
    assert status == 201 and session["avatar"]["avatar_id"] == avatar["avatar_id"]
    assert server.json("DELETE", f"/v1/sessions/{session['session_id']}")[0] == 204


def test_unknown_ids(server):
    assert_error(*server.json("GET", "/v1/sessions/nope"), 404, "unknown_session")
    assert_error(*server.json("DELETE", "/v1/sessions/nope"), 404, "unknown_session")
    assert_error(*server.json("POST", "/v1/sessions/nope/offer", {"sdp": "v=0", "type": "offer"}), 404,
                 "unknown_session")
    assert_error(*server.json("POST", "/v1/sessions", {"avatar_id": "nope"}), 404, "unknown_avatar")


@pytest.mark.parametrize("body, code", [
    (b"not json at all", "bad_json"),
    (b'["a list"]', "bad_json"),
    (b'{"sdp": "hello, I am not SDP", "type": "offer"}', "bad_offer"),
    (b'{"sdp": 42, "type": "offer"}', "bad_offer"),
    (b'{"sdp": "v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\ngarbage\\r\\n", "type": "offer"}', "bad_offer"),
])
def test_bad_offers(server, body, code):
    status, session = server.json("POST", "/v1/sessions", {})
    assert status == 201
    assert_error(*server.json("POST", f"/v1/sessions/{session['session_id']}/offer", body), 400, code)
    server.json("DELETE", f"/v1/sessions/{session['session_id']}")


@pytest.mark.slow
def test_bad_input_leaves_a_live_session_untouched(server, speech_16k):
    """While one client is mid-call, another sends every kind of bad input; the call does not notice."""
    pcm, _ = speech_16k
    results = []

    async def abuse() -> None:
        await asyncio.sleep(2.0)
        bad = [
            ("/v1/avatars", b"garbage", "image/jpeg"),
            ("/v1/avatars", png_header_only(20_000, 20_000), "image/png"),
            ("/v1/avatars", no_face_photo(), "image/jpeg"),
            ("/v1/sessions/nope/offer", b'{"sdp": "x"}', "application/json"),
            ("/v1/sessions", b"{{{", "application/json"),
        ]
        async with aiohttp.ClientSession() as http:
            for path, data, ctype in bad * 2:
                async with http.post(server.base_url + path, data=data, headers={"Content-Type": ctype}) as r:
                    results.append(r.status)
                await asyncio.sleep(0.2)
            async with http.get(server.base_url + "/v1/health") as r:
                results.append(r.status)

    got = asyncio.run(run_call(server.base_url, pcm[: 16000 * 6], seconds=7.0, during=abuse))
    assert results[:-1] and all(400 <= s < 500 for s in results[:-1]), results
    assert results[-1] == 200
    times = np.array([t for t, _ in got["video"]])
    steady = times[(times > times[0] + 1.0) & (times < times[-1] - 0.5)]
    gaps = np.diff(steady)
    fps = (len(steady) - 1) / (steady[-1] - steady[0])
    print(f"live call during abuse: {fps:.2f} fps, longest gap {gaps.max() * 1000:.0f} ms")
    assert fps >= 24.0
    assert gaps.max() < 0.25, "the live session stalled while bad requests were handled"
