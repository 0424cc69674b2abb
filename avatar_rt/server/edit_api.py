"""The edit API, shared by the HTTP endpoints and the `control` datachannel.

Both transports hand a message type and a JSON body here and send back the
reply; so one schema, one validator and one behaviour serve both.
"""

from __future__ import annotations

import re

from avatar_rt.edits.engine import EditEngine
from avatar_rt.edits.schema import DEFAULT_TRANSITION_MS, EditError, parse_edit
from avatar_rt.edits.store import EditStore

PRESET_NAME = re.compile(r"^[A-Za-z0-9_. -]{1,64}$")
MESSAGE_TYPES = ("edit", "edit.text", "edit.undo", "edit.get", "preset.save", "preset.apply", "preset.list")


def _preset_name(body: dict) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not PRESET_NAME.match(name):
        raise EditError('a preset "name" is 1–64 letters, digits, spaces, dots, dashes or underscores')
    return name


def _transition_s(body: dict) -> float:
    value = body.get("transition_ms", DEFAULT_TRANSITION_MS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10_000:
        raise EditError("transition_ms must be a number of milliseconds between 0 and 10000")
    return float(value) / 1000.0


def handle(kind: str, body: dict, engine: EditEngine, store: EditStore | None, now: float) -> dict:
    """Carry out one edit-API message; returns the reply (raises AvatarRtError on bad input)."""
    if kind == "edit":
        version = engine.submit(parse_edit(body), now, raw={k: v for k, v in body.items() if k != "type"})
    elif kind == "edit.text":
        from avatar_rt.edits.text_edits import handle_text, shared_editor  # loads the text model on first use

        return handle_text(body, engine, now, shared_editor())
    elif kind == "edit.undo":
        version = engine.undo(now, _transition_s(body))
    elif kind == "edit.get":
        version = engine.version
    elif kind == "preset.save":
        if store is None:
            raise EditError("presets need the edit store", code="no_store", status=409)
        name = _preset_name(body)
        store.save_preset(name, engine.state)
        return {"type": "preset.saved", "name": name}
    elif kind == "preset.apply":
        if store is None:
            raise EditError("presets need the edit store", code="no_store", status=409)
        name = _preset_name(body)
        state = store.preset(name)
        if state is None:
            raise EditError(f"no preset named {name!r}", code="unknown_preset", status=404)
        version = engine.apply_state(state, now, _transition_s(body), {"preset": name})
    elif kind == "preset.list":
        return {"type": "preset.list", "names": store.preset_names() if store else []}
    else:
        raise EditError(f"unknown edit message {kind[:40]!r}; known: {', '.join(MESSAGE_TYPES)}",
                        code="unknown_type")
    history = store.history_length(engine.avatar_id) if store else 0
    return {"type": "edit.ack", "version": version, "state": engine.state.to_json(), "undo_available": history}
