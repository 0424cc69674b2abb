"""The edit schema: one validator for datachannel messages and HTTP bodies alike.

An edit sets some fields of the edit state and leaves the rest:

    {"set": {"emotion": {"happy": 0.6},
             "regions": {"brows": {"sad": 0.8}},
             "lip_scale": 1.2, "lip_scale_mode": "fixed",
             "viseme_style": {"ou": 1.4, "E": 1.2},
             "head_motion": 0.5, "blink_rate": 1.0, "gaze": [0.0, 0.1]},
     "transition_ms": 300, "at": 12.5}

Anything unknown, out of range or of the wrong type is refused with a message
naming the field; a refused edit changes nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from avatar_rt.edits.appearance import APPEARANCE
from avatar_rt.edits.attributes import GEOMETRIC
from avatar_rt.edits.emotions import EMOTIONS, REGIONS
from avatar_rt.edits.speech_style import VISEME_SHAPES
from avatar_rt.errors import AvatarRtError

MOUTH_RESTS = ("closed", "photo")  # as avatar_rt.avatar.rest_mouth.MOUTH_RESTS
MAX_EDIT_BYTES = 64 * 1024
DEFAULT_TRANSITION_MS = 300.0
MAX_TRANSITION_MS = 10_000.0
LIP_SCALE_MODES = ("fixed", "loudness")


class EditError(AvatarRtError):
    code = "bad_edit"
    status = 400


@dataclass
class EditState:
    """Everything the user has set; persisted as JSON, applied to every frame."""

    emotion: dict[str, float] = field(default_factory=dict)  # the whole face
    regions: dict[str, dict[str, float]] = field(default_factory=dict)  # per region, overriding `emotion` there
    lip_scale: float = 1.0
    lip_scale_mode: str = "fixed"
    viseme_style: dict[str, float] = field(default_factory=dict)
    head_motion: float = 1.0
    blink_rate: float = 1.0
    gaze: tuple[float, float] = (0.0, 0.0)
    # Static edits: baked into the portrait once when they change.
    attributes: dict[str, float] = field(default_factory=dict)
    appearance: dict = field(default_factory=dict)
    # Drawn per frame, anchored to the head; a number so it can fade in and out.
    glasses: float = 0.0
    # The rest mouth: "closed" (parted lips in the photo are closed, the default) or "photo" (the photo's
    # own expression kept); a static edit (avatar_rt/avatar/rest_mouth.py).
    mouth_rest: str = "closed"

    def to_json(self) -> dict:
        return {"emotion": dict(self.emotion), "regions": {r: dict(w) for r, w in self.regions.items()},
                "lip_scale": self.lip_scale, "lip_scale_mode": self.lip_scale_mode,
                "viseme_style": dict(self.viseme_style), "head_motion": self.head_motion,
                "blink_rate": self.blink_rate, "gaze": list(self.gaze), "attributes": dict(self.attributes),
                "appearance": {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.appearance.items()},
                "glasses": self.glasses, "mouth_rest": self.mouth_rest}

    def static_key(self) -> str:
        """Identifies the baked portrait these static edits need ('' when none)."""
        if not self.attributes and not self.appearance and self.mouth_rest == "closed":
            return ""
        key = {"a": self.attributes, "p": self.appearance}
        if self.mouth_rest != "closed":
            key["m"] = self.mouth_rest
        return json.dumps(key, sort_keys=True)

    @classmethod
    def from_json(cls, data: dict) -> EditState:
        return cls().merged(parse_fields(data, where="state"))

    def merged(self, fields_: dict) -> EditState:
        state = EditState(**{**self.to_json(), "gaze": self.gaze})
        for key, value in fields_.items():
            setattr(state, key, tuple(value) if key == "gaze" else value)
        return state

    def region_weights(self) -> dict[str, dict[str, float]]:
        """Each region's emotion mix: its own if set, else the whole-face one."""
        return {r: self.regions.get(r, self.emotion) for r in REGIONS}


@dataclass(frozen=True)
class EditRequest:
    fields: dict
    transition_ms: float = DEFAULT_TRANSITION_MS
    at: float | None = None  # media time in seconds; None = now


def _number(value, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EditError(f"{where} must be a number, got {value!r:.40}")
    if not low <= value <= high:
        raise EditError(f"{where} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _mix(value, where: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise EditError(f'{where} must be an object like {{"happy": 0.5}}')
    out = {}
    for name, intensity in value.items():
        if name not in EMOTIONS:
            raise EditError(f"unknown emotion {str(name)[:40]!r} in {where}; known: {', '.join(EMOTIONS)}",
                            code="unknown_emotion")
        out[name] = _number(intensity, f"{where}.{name}", 0.0, 1.0)
    return {k: v for k, v in out.items() if v > 0 and k != "neutral"}


def _appearance(value) -> dict:
    if not isinstance(value, dict):
        raise EditError('"appearance" must be an object like {"lip_colour": {"rgb": [180, 40, 60], "strength": 0.6}}')
    out = {}
    for name, spec in value.items():
        if name not in APPEARANCE:
            raise EditError(f"unknown appearance edit {str(name)[:40]!r}; known: {', '.join(APPEARANCE)}")
        if name == "blush":
            strength = _number(spec, "appearance.blush", 0.0, 1.0)
            if strength > 0:
                out[name] = strength
            continue
        if not isinstance(spec, dict) or set(spec) - {"rgb", "strength"} or "rgb" not in spec:
            raise EditError(f'appearance.{name} must be {{"rgb": [r, g, b], "strength": 0..1}}')
        rgb = spec["rgb"]
        if not isinstance(rgb, (list, tuple)) or len(rgb) != 3:
            raise EditError(f"appearance.{name}.rgb must be three numbers 0–255")
        colour = [int(_number(c, f"appearance.{name}.rgb", 0, 255)) for c in rgb]
        strength = _number(spec.get("strength", 1.0), f"appearance.{name}.strength", 0.0, 1.0)
        if strength > 0:
            out[name] = {"rgb": colour, "strength": strength}
    return out


def parse_fields(data, where: str = "set") -> dict:
    if not isinstance(data, dict):
        raise EditError(f'"{where}" must be an object')
    out: dict = {}
    for key, value in data.items():
        if key == "emotion":
            out[key] = _mix(value, "emotion")
        elif key == "regions":
            if not isinstance(value, dict):
                raise EditError('"regions" must map a region to an emotion mix')
            regions = {}
            for region, mix in value.items():
                if region not in REGIONS:
                    raise EditError(f"unknown region {str(region)[:40]!r}; known: {', '.join(REGIONS)}")
                regions[region] = _mix(mix, f"regions.{region}")
            out[key] = regions
        elif key == "lip_scale":
            out[key] = _number(value, "lip_scale", 0.0, 2.5)
        elif key == "lip_scale_mode":
            if value not in LIP_SCALE_MODES:
                raise EditError(f"lip_scale_mode must be one of {', '.join(LIP_SCALE_MODES)}")
            out[key] = value
        elif key == "viseme_style":
            if not isinstance(value, dict):
                raise EditError('"viseme_style" must map a viseme to a scale, like {"ou": 1.3}')
            style = {}
            for viseme, scale in value.items():
                if viseme not in VISEME_SHAPES:
                    raise EditError(f"unknown viseme {str(viseme)[:40]!r}; known: {', '.join(VISEME_SHAPES)}")
                style[viseme] = _number(scale, f"viseme_style.{viseme}", 0.0, 3.0)
            out[key] = style
        elif key == "head_motion":
            out[key] = _number(value, "head_motion", 0.0, 3.0)
        elif key == "blink_rate":
            out[key] = _number(value, "blink_rate", 0.0, 4.0)
        elif key == "gaze":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise EditError('"gaze" must be [x, y], each in -1..1')
            out[key] = (_number(value[0], "gaze[0]", -1.0, 1.0), _number(value[1], "gaze[1]", -1.0, 1.0))
        elif key == "attributes":
            if not isinstance(value, dict):
                raise EditError('"attributes" must map an attribute to a strength, like {"smile": 0.4}')
            attrs = {}
            for name, strength in value.items():
                if name not in GEOMETRIC:
                    raise EditError(f"unknown attribute {str(name)[:40]!r}; known: {', '.join(GEOMETRIC)}",
                                    code="unknown_attribute")
                attrs[name] = _number(strength, f"attributes.{name}", -1.0, 1.0)
            out[key] = {k: v for k, v in attrs.items() if v != 0.0}
        elif key == "appearance":
            out[key] = _appearance(value)
        elif key == "glasses":
            out[key] = float(value) if isinstance(value, bool) else _number(value, "glasses", 0.0, 1.0)
        elif key == "mouth_rest":
            if value not in MOUTH_RESTS:
                raise EditError(f"mouth_rest must be one of {', '.join(MOUTH_RESTS)} (closed: parted lips in the "
                                "photo are closed for the rest pose; photo: the photo's own expression is kept)")
            out[key] = value
        else:
            raise EditError(f"unknown edit field {str(key)[:40]!r}; known: emotion, regions, lip_scale, "
                            "lip_scale_mode, viseme_style, head_motion, blink_rate, gaze, attributes, "
                            "appearance, glasses, mouth_rest")
    return out


def parse_edit(message: dict) -> EditRequest:
    """An edit message (the body of POST …/edits, or a datachannel message of type "edit")."""
    if not isinstance(message, dict):
        raise EditError("an edit is a JSON object")
    unknown = set(message) - {"type", "set", "transition_ms", "at"}
    if unknown:
        raise EditError(f"unknown key(s) in edit: {', '.join(sorted(str(k)[:40] for k in unknown))}")
    if "set" not in message:
        raise EditError('an edit needs "set": the fields to change')
    fields_ = parse_fields(message["set"])
    transition = _number(message.get("transition_ms", DEFAULT_TRANSITION_MS), "transition_ms", 0.0,
                         MAX_TRANSITION_MS)
    at = message.get("at")
    if at is not None:
        at = _number(at, "at", 0.0, 1e9)
    return EditRequest(fields=fields_, transition_ms=transition, at=at)
