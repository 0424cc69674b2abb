"""The avatars on a server: listed newest first with the default marked, a thumbnail each, the same
photo uploaded twice is one avatar, and delete takes the avatar and its edits (never the default,
never one a call is using), with clear 4xx errors."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from test_api_errors import assert_error, jpeg

PORTRAITS = Path(__file__).resolve().parent / "data" / "portraits"


def photo(name: str, crop: int) -> bytes:
    """A test portrait, `crop` pixels off its top-left: a photo no other test uploads (a fresh id)."""
    image = cv2.imread(str(PORTRAITS / name))
    return jpeg(image[crop:, crop:])


def upload(server, data: bytes) -> dict:
    status, avatar = server.json("POST", "/v1/avatars", data, "image/jpeg")
    assert status == 201, avatar
    return avatar


def listing(server, query: str = "") -> dict:
    status, body = server.json("GET", "/v1/avatars" + query)
    assert status == 200, body
    return body


def test_list_is_newest_first_with_the_default_marked_and_dedupes(server):
    first = upload(server, photo("hopper.jpg", 7))
    time.sleep(0.01)
    second = upload(server, photo("obama.jpg", 7))
    body = listing(server)
    ids = [a["avatar_id"] for a in body["avatars"]]
    assert ids.index(second["avatar_id"]) < ids.index(first["avatar_id"]), ids
    uploaded = [a["uploaded"] for a in body["avatars"]]
    assert uploaded == sorted(uploaded, reverse=True), uploaded
    defaults = [a for a in body["avatars"] if a["default"]]
    assert [a["avatar_id"] for a in defaults] == [body["default_avatar"]], body
    assert body["default_avatar"] == server.json("GET", "/v1/health")[1]["default_avatar"]
    assert body["total"] == len(ids) == len(set(ids))

    # The same photo again: the same id back, nothing new listed, its place in the list kept.
    again = upload(server, photo("hopper.jpg", 7))
    assert again == first
    after = listing(server)
    assert after["total"] == body["total"]
    assert [a["avatar_id"] for a in after["avatars"]] == ids

    assert len(listing(server, "?limit=1")["avatars"]) == 1
    for bad in ("0", "x", "501"):
        assert_error(*server.json("GET", f"/v1/avatars?limit={bad}"), 400, "bad_query")


def test_thumbnail_is_a_small_jpeg_of_the_portrait(server):
    avatar = upload(server, photo("obama.jpg", 9))
    with urllib.request.urlopen(f"{server.base_url}/v1/avatars/{avatar['avatar_id']}/thumbnail", timeout=30) as r:
        assert r.headers["Content-Type"] == "image/jpeg"
        thumb = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
    with urllib.request.urlopen(f"{server.base_url}/v1/avatars/{avatar['avatar_id']}/image", timeout=30) as r:
        full = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape == (160, 160, 3)
    # The same picture, only smaller.
    small = cv2.resize(full, (160, 160), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(small - thumb).mean() < 6, np.abs(small - thumb).mean()
    assert_error(*server.json("GET", "/v1/avatars/nope-512/thumbnail"), 404, "unknown_avatar")


def test_delete_takes_the_avatar_and_its_edits(server):
    data = photo("hopper.jpg", 11)
    avatar = upload(server, data)
    avatar_id = avatar["avatar_id"]
    status, session = server.json("POST", "/v1/sessions", {"avatar_id": avatar_id})
    assert status == 201, session
    sid = session["session_id"]
    status, ack = server.json("POST", f"/v1/sessions/{sid}/edits", {"set": {"emotion": {"happy": 0.5}}})
    assert status == 200 and ack["version"] >= 1, ack
    assert next(a for a in listing(server)["avatars"] if a["avatar_id"] == avatar_id)["edits_version"] == ack["version"]

    # A call is using it: refused, nothing lost.
    assert_error(*server.json("DELETE", f"/v1/avatars/{avatar_id}"), 409, "avatar_in_use")
    assert server.json("GET", f"/v1/avatars/{avatar_id}")[0] == 200
    assert server.json("DELETE", f"/v1/sessions/{sid}")[0] == 204

    status, body = server.json("DELETE", f"/v1/avatars/{avatar_id}")
    assert status == 204, body
    assert avatar_id not in [a["avatar_id"] for a in listing(server)["avatars"]]
    assert_error(*server.json("GET", f"/v1/avatars/{avatar_id}"), 404, "unknown_avatar")
    assert_error(*server.json("GET", f"/v1/avatars/{avatar_id}/thumbnail"), 404, "unknown_avatar")
    assert_error(*server.json("POST", "/v1/sessions", {"avatar_id": avatar_id}), 404, "unknown_avatar")
    assert_error(*server.json("DELETE", f"/v1/avatars/{avatar_id}"), 404, "unknown_avatar")

    # Uploaded again: the same id, starting without the deleted edits.
    assert upload(server, data)["avatar_id"] == avatar_id
    status, session = server.json("POST", "/v1/sessions", {"avatar_id": avatar_id})
    status, got = server.json("GET", f"/v1/sessions/{session['session_id']}/edits")
    assert got["version"] == 0 and got["state"]["emotion"] == {}, got
    assert server.json("DELETE", f"/v1/sessions/{session['session_id']}")[0] == 204
    assert server.json("DELETE", f"/v1/avatars/{avatar_id}")[0] == 204


def test_the_default_avatar_cannot_be_deleted(server):
    default = listing(server)["default_avatar"]
    status, body = server.json("DELETE", f"/v1/avatars/{default}")
    assert_error(status, body, 409, "default_avatar")
    assert "default" in body["error"]["message"]
    assert default in [a["avatar_id"] for a in listing(server)["avatars"]]
    assert server.json("GET", f"/v1/avatars/{default}")[0] == 200
    assert_error(*server.json("DELETE", "/v1/avatars/nope"), 404, "unknown_avatar")
