"""Edits as a user sees them: emotions that look like emotions, smooth changes, nothing lost, bad input refused."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, detect_faces, load_portrait
from avatar_rt.edits.emotions import EMOTIONS
from avatar_rt.edits.engine import EditEngine, EditNumbers
from avatar_rt.edits.schema import EditError, EditState, parse_edit
from avatar_rt.edits.speech_style import apply_style
from avatar_rt.edits.store import EditStore
from avatar_rt.motion.params import PARAM_INDEX, MotionParams
from avatar_rt.pipeline import FramePipeline, frame_bounds
from avatar_rt.render.renderer import PortraitRenderer
from avatar_rt.rig.landmark_rig import LandmarkRig
from conftest import start_server, stop_server


@pytest.fixture(scope="module")
def face():
    portrait = load_portrait(DEFAULT_PORTRAIT)
    return portrait, LandmarkRig(portrait), PortraitRenderer(portrait)


def emotion_params(emotion: str, intensity: float, region: str | None = None) -> MotionParams:
    state = EditState(regions={region: {emotion: intensity}}) if region else EditState(emotion={emotion: intensity})
    vector = EditEngine.apply(MotionParams().to_vector(), EditNumbers.of(state), -60.0)
    return MotionParams.from_vector(vector).clipped()


def measures(points: np.ndarray, iod: float) -> dict[str, float]:
    """Facial measurements in IOD; image y grows downwards, so 'up' is negative y."""
    corners_y = points[[61, 291], 1].mean()
    lip_mid_y = points[[13, 14], 1].mean()
    inner_brows = points[[107, 336], 1].mean()
    outer_brows = points[[70, 300], 1].mean()
    eyes = np.mean([points[lm.RIGHT_EYE_LOWER[4], 1] - points[lm.RIGHT_EYE_UPPER[4], 1],
                    points[lm.LEFT_EYE_LOWER[4], 1] - points[lm.LEFT_EYE_UPPER[4], 1]])
    return {
        "corner_lift": (lip_mid_y - corners_y) / iod,  # corners above the lip centre: a smile
        "inner_brow_height": -(inner_brows - points[lm.NOSE_TIP, 1]) / iod,
        "outer_brow_height": -(outer_brows - points[lm.NOSE_TIP, 1]) / iod,
        "brow_gap": (points[336, 0] - points[107, 0]) / iod,
        "eye_open": eyes / iod,
        "upper_lip_height": -(points[0, 1] - points[lm.NOSE_TIP, 1]) / iod,
        "mouth_centre_x": points[[61, 291], 0].mean() / iod,
    }


# emotion → (measure, sign): the documented direction in which it moves the face.
DIRECTIONS = {
    "happy": ("corner_lift", +1),
    "sad": ("inner_brow_height", +1),
    "angry": ("inner_brow_height", -1),  # brows pulled down (MediaPipe barely sees them pulled together)
    "surprised": ("outer_brow_height", +1),
    "fearful": ("eye_open", +1),
    "disgusted": ("upper_lip_height", +1),
    "contempt": ("mouth_centre_x", +1),
}


@pytest.mark.parametrize("emotion", list(DIRECTIONS))
def test_each_emotion_moves_the_redetected_face_its_way_monotonically(face, emotion):
    portrait, rig, renderer = face
    key, sign = DIRECTIONS[emotion]
    values = []
    for intensity in (0.0, 0.5, 1.0):
        frame = renderer.render(rig.pose(emotion_params(emotion, intensity)))
        detected = detect_faces(frame[:, :, ::-1])[0][:, :2]
        values.append(sign * measures(detected, portrait.inter_ocular)[key])
    print(emotion, key, [round(v, 4) for v in values])
    assert values[0] < values[1] < values[2], f"{emotion} should move {key} with intensity: {values}"
    assert values[2] - values[0] > 0.01, f"{emotion} at 1 moves {key} by only {values[2] - values[0]:.4f} IOD"


def test_regions_mix_a_smiling_mouth_with_sad_brows(face):
    portrait, rig, renderer = face
    state = EditState(regions={"mouth": {"happy": 1.0}, "brows": {"sad": 1.0}})
    params = MotionParams.from_vector(EditEngine.apply(MotionParams().to_vector(), EditNumbers.of(state), -60.0))
    assert params.mouth_corner_lift > 0.5 and params.brow_inner_raise > 0.5
    assert params.cheek_raise == 0.0, "the eyes region was not asked to smile"


def test_speech_articulation_survives_emotion():
    """A closure stays closed and a rounding stays round whatever the emotion (Δ_emo yields to speech)."""
    closure = MotionParams(lip_press=1.0, jaw_open=0.1).to_vector()
    rounding = MotionParams(lip_round=0.9, jaw_open=0.2).to_vector()
    for emotion in EMOTIONS:
        numbers = EditNumbers.of(EditState(emotion={emotion: 1.0}))
        for speech in (closure, rounding):
            out = EditEngine.apply(speech, numbers, -20.0)
            for name in ("jaw_open", "lip_round", "lip_press"):
                assert out[PARAM_INDEX[name]] == pytest.approx(speech[PARAM_INDEX[name]], abs=1e-6), (emotion, name)


def test_lip_scale_and_viseme_style():
    open_vowel = MotionParams(jaw_open=0.6, lip_spread=0.1).to_vector()
    rounded = MotionParams(lip_round=0.8, jaw_open=0.2).to_vector()
    bigger = apply_style(open_vowel, 1.5, {})
    assert bigger[PARAM_INDEX["jaw_open"]] == pytest.approx(0.9)
    press = MotionParams(lip_press=1.0).to_vector()
    assert apply_style(press, 0.5, {})[PARAM_INDEX["lip_press"]] == 1.0, "a closure stays a closure"
    # A rounder "oo" changes the rounded sound much more than the open one.
    r = apply_style(rounded, 1.0, {"ou": 1.4})[PARAM_INDEX["lip_round"]] - rounded[PARAM_INDEX["lip_round"]]
    o = apply_style(open_vowel, 1.0, {"ou": 1.4})[PARAM_INDEX["lip_round"]] - open_vowel[PARAM_INDEX["lip_round"]]
    assert r > 0.1 and r > 5 * abs(o)


@pytest.mark.parametrize("message, code", [
    ({"set": {"emotion": {"ecstatic": 0.5}}}, "unknown_emotion"),
    ({"set": {"emotion": {"happy": 7}}}, "bad_edit"),
    ({"set": {"emotion": {"happy": "lots"}}}, "bad_edit"),
    ({"set": {"emotion": {"happy": True}}}, "bad_edit"),
    ({"set": {"lip_scale": float("nan")}}, "bad_edit"),
    ({"set": {"regions": {"ears": {"happy": 1}}}}, "bad_edit"),
    ({"set": {"gaze": [0.1]}}, "bad_edit"),
    ({"set": {"wings": 1}}, "bad_edit"),
    ({"emotion": {"happy": 1}}, "bad_edit"),
    ({"set": {}, "transition_ms": -5}, "bad_edit"),
])
def test_invalid_edits_are_refused_and_change_nothing(tmp_path, message, code):
    store = EditStore(tmp_path / "e.sqlite3")
    engine = EditEngine("avatar", store)
    engine.submit(parse_edit({"set": {"emotion": {"sad": 0.4}}}), 0.0)
    before = (engine.state.to_json(), engine.version, store.history_length("avatar"))
    with pytest.raises(EditError) as err:
        engine.submit(parse_edit(message), 1.0)
    assert err.value.code == code and len(err.value.message) > 10
    assert (engine.state.to_json(), engine.version, store.history_length("avatar")) == before


def test_transitions_ease_and_scheduled_edits_wait_for_their_time(tmp_path):
    engine = EditEngine("a", EditStore(tmp_path / "e.sqlite3"))
    engine.submit(parse_edit({"set": {"emotion": {"happy": 1.0}}, "transition_ms": 400}), now=1.0)
    lift = lambda t: engine.numbers(t).emotion[PARAM_INDEX["mouth_corner_lift"]]  # noqa: E731
    samples = [lift(t) for t in (1.0, 1.1, 1.2, 1.3, 1.4, 2.0)]
    assert samples[0] == 0.0 and samples[-1] == pytest.approx(0.8)
    assert all(b >= a for a, b in zip(samples, samples[1:])) and 0 < samples[2] < 0.8
    engine.submit(parse_edit({"set": {"emotion": {}}, "at": 5.0, "transition_ms": 0}), now=2.0)
    assert lift(4.99) == pytest.approx(0.8), "a scheduled edit must wait for its media time"
    assert lift(5.0) == 0.0


def test_undo_and_presets(tmp_path):
    store = EditStore(tmp_path / "e.sqlite3")
    engine = EditEngine("a", store)
    engine.submit(parse_edit({"set": {"emotion": {"happy": 0.5}}}), 0.0)
    engine.submit(parse_edit({"set": {"lip_scale": 1.3}}), 1.0)
    store.save_preset("cheerful", engine.state)
    engine.undo(2.0)
    assert engine.state.lip_scale == 1.0 and engine.state.emotion == {"happy": 0.5}
    engine.undo(3.0)
    assert engine.state.emotion == {}
    with pytest.raises(EditError):
        engine.undo(4.0)
    engine.apply_state(store.preset("cheerful"), 5.0, 0.3, {"preset": "cheerful"})
    assert engine.state.lip_scale == 1.3 and engine.state.emotion == {"happy": 0.5}


def test_changing_edits_while_talking_shows_no_jump(face, speech_16k):
    """The largest frame-to-frame landmark step in a transition is at most 2× the largest in speech alone."""
    portrait, rig, renderer = face
    pcm, spans = speech_16k
    engine = EditEngine("a", None)
    pipeline = FramePipeline(portrait, 25.0, renderer=renderer, edits=engine)
    points, switch_frame = [], None
    for n in range(int(len(pcm) / 16000 * 25) - 1):
        a, b = frame_bounds(n, 25.0)
        t = pipeline.media_time
        if switch_frame is None and t >= spans[0][0] + 1.0:  # mid-sentence
            engine.submit(parse_edit({"set": {"emotion": {"surprised": 1.0}, "regions": {"mouth": {"happy": 1.0}}}}),
                          now=t)
            switch_frame = len(points)
        out = pipeline.step(pcm[a:b], render=False)
        if out is not None:
            points.append(rig.pose(out.params).points)
    steps = np.abs(np.diff(np.array(points), axis=0)).max(axis=(1, 2))
    transition = steps[switch_frame:switch_frame + 10].max()
    speech_only = steps[:switch_frame - 1].max()
    print(f"largest step: speech {speech_only:.2f} px, transition {transition:.2f} px")
    assert transition <= 2 * speech_only


@pytest.mark.slow
def test_edits_survive_reconnect_restart_and_kill_9(tmp_path):
    db = tmp_path / "edits.sqlite3"
    server = start_server("edits-server.log", db=db)
    try:
        import cv2

        portrait = cv2.imread(str(DEFAULT_PORTRAIT))
        ok, upload = cv2.imencode(".jpg", cv2.resize(portrait[30:, 40:], (600, 560)))
        status, uploaded = server.json("POST", "/v1/avatars", upload.tobytes(), "image/jpeg")
        assert status == 201, uploaded
        status, s1 = server.json("POST", "/v1/sessions", {})
        edit = {"set": {"emotion": {"happy": 0.7}, "regions": {"brows": {"sad": 0.4}}, "lip_scale": 1.2}}
        status, ack = server.json("POST", f"/v1/sessions/{s1['session_id']}/edits", edit)
        assert status == 200 and ack["type"] == "edit.ack", ack
        server.json("DELETE", f"/v1/sessions/{s1['session_id']}")
        # Reconnect: a new session of the same avatar has the edits.
        status, s2 = server.json("POST", "/v1/sessions", {})
        status, got = server.json("GET", f"/v1/sessions/{s2['session_id']}/edits")
        assert got["state"] == ack["state"]
        # An acknowledged edit, then kill -9 straight away.
        status, ack2 = server.json("POST", f"/v1/sessions/{s2['session_id']}/edits",
                                   {"set": {"emotion": {"surprised": 1.0}}, "transition_ms": 0})
        assert status == 200
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
    finally:
        stop_server(server)
    server = start_server("edits-server-2.log", db=db)
    try:
        status, s3 = server.json("POST", "/v1/sessions", {})
        status, got = server.json("GET", f"/v1/sessions/{s3['session_id']}/edits")
        assert got["state"] == ack2["state"] and got["version"] == ack2["version"]
        # Bad edits over HTTP: clear errors, nothing changed.
        for body, code in ((b'{"set": {"emotion": {"happy": 7}}}', 400), (b"x" * (1 << 20), 413),
                           (b'{"set": {"emotion": "happy"}}', 400)):
            status, err = server.json("POST", f"/v1/sessions/{s3['session_id']}/edits", body)
            assert status == code and err["error"]["message"], err
        status, after = server.json("GET", f"/v1/sessions/{s3['session_id']}/edits")
        assert after["version"] == ack2["version"]
        # An avatar uploaded before the restart still works, from its stored analysis.
        status, again = server.json("GET", f"/v1/avatars/{uploaded['avatar_id']}")
        assert status == 200 and again["face_box"] == uploaded["face_box"], again
        status, s4 = server.json("POST", "/v1/sessions", {"avatar_id": uploaded["avatar_id"]})
        assert status == 201, s4
        # Undo goes back through the history, across the restart.
        status, undone = server.json("POST", f"/v1/sessions/{s3['session_id']}/edits/undo", {})
        assert undone["state"] == ack["state"], json.dumps(undone)
    finally:
        stop_server(server)
