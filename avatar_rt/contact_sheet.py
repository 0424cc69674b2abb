"""A contact sheet: one labelled frame per motion setting, in a grid, for a person to look at.

Each tile is the portrait rendered through the real rig and renderer with one
setting of the motion parameters, cropped to the head (the same crop for every
tile, so tiles compare directly), with its label written under it. The default
cases cover what speech and idle motion use: rest, jaw, lip rounding and
spreading, blinks, head pose at both ends of its range, and a few expression
and eye parameters. `avatar-rt render --contact-sheet out.png` writes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avatar_rt.avatar.reference import Portrait
from avatar_rt.errors import AvatarRtError
from avatar_rt.motion.params import PARAMS, MotionParams

TILE = 256  # each frame's crop is resized to this many pixels a side
LABEL_HEIGHT = 30  # the strip under each tile that holds its label
GAP = 8  # space between tiles and around the sheet
COLUMNS = 6
HEAD_MARGIN = 0.45  # the crop extends this fraction of the face box's larger side beyond it, all round
SHEET_BGR = (236, 236, 236)
LABEL_BGR = (30, 30, 30)

_RANGE = {p.name: (p.low, p.high) for p in PARAMS}


@dataclass(frozen=True)
class SheetCase:
    label: str
    params: MotionParams


def _extreme(name: str, end: int) -> SheetCase:
    """The parameter at the low (end=0) or high (end=1) end of its documented range."""
    value = _RANGE[name][end]
    short = name.removeprefix("head_")
    return SheetCase(f"{short} {value:+g}", MotionParams(**{name: value}))


DEFAULT_CASES: tuple[SheetCase, ...] = (
    SheetCase("rest", MotionParams()),
    SheetCase("closed: lip_press 1", MotionParams(lip_press=1.0)),
    SheetCase("jaw_open 1", MotionParams(jaw_open=1.0)),
    SheetCase("lip_round 1", MotionParams(lip_round=1.0)),
    SheetCase("lip_spread 1", MotionParams(lip_spread=1.0)),
    SheetCase("blink (both) 1", MotionParams(blink_l=1.0, blink_r=1.0)),
    SheetCase("wink: blink_l 1", MotionParams(blink_l=1.0)),
    _extreme("head_yaw", 0),
    _extreme("head_yaw", 1),
    _extreme("head_pitch", 0),
    _extreme("head_pitch", 1),
    _extreme("head_roll", 0),
    _extreme("head_roll", 1),
    SheetCase("smile: corner_lift +1", MotionParams(mouth_corner_lift=1.0)),
    SheetCase("brows raised +1", MotionParams(brow_raise_l=1.0, brow_raise_r=1.0)),
    SheetCase("gaze_x -1", MotionParams(gaze_x=-1.0)),
    SheetCase("gaze_x +1", MotionParams(gaze_x=1.0)),
    SheetCase("jaw 0.6 + teeth_show 1", MotionParams(jaw_open=0.6, teeth_show=1.0)),
)


def _emotion(label: str, speech: MotionParams | None = None, **weights) -> SheetCase:
    from avatar_rt.edits.engine import EditEngine, EditNumbers
    from avatar_rt.edits.schema import EditState

    regions = {k: v for k, v in weights.items() if isinstance(v, dict)}
    whole = {k: v for k, v in weights.items() if not isinstance(v, dict)}
    numbers = EditNumbers.of(EditState(emotion=whole, regions=regions))
    base = (speech or MotionParams()).to_vector()
    return SheetCase(label, MotionParams.from_vector(EditEngine.apply(base, numbers, -60.0)))


def emotion_cases() -> tuple[SheetCase, ...]:
    """Each emotion at full intensity, one at half, and PC-Talk's region mix."""
    return (
        SheetCase("neutral", MotionParams()),
        _emotion("happy 1", happy=1.0), _emotion("happy 0.5", happy=0.5), _emotion("sad 1", sad=1.0),
        _emotion("angry 1", angry=1.0), _emotion("surprised 1", surprised=1.0), _emotion("fearful 1", fearful=1.0),
        _emotion("disgusted 1", disgusted=1.0), _emotion("contempt 1", contempt=1.0),
        _emotion("mouth happy + brows sad", mouth={"happy": 1.0}, brows={"sad": 1.0}, eyes={"sad": 0.5}),
        _emotion("mouth sad + eyes surprised", mouth={"sad": 1.0}, eyes={"surprised": 1.0},
                 brows={"surprised": 1.0}),
        _emotion("happy 1, saying 'aa'", MotionParams(jaw_open=0.8), happy=1.0),
    )


# The mouth gallery: what a viewer judges a talking mouth by, one column each.
MOUTH_CASES: tuple[SheetCase, ...] = (
    SheetCase("rest", MotionParams()),
    SheetCase("closure (p/b/m)", MotionParams(jaw_open=0.15, lip_press=1.0)),
    SheetCase("ee", MotionParams(jaw_open=0.25, lip_spread=0.8, teeth_show=0.5)),
    SheetCase("oo", MotionParams(jaw_open=0.3, lip_round=0.9)),
    SheetCase("aa", MotionParams(jaw_open=0.65)),
    SheetCase("wide jaw", MotionParams(jaw_open=1.0)),
)

SHEETS = {"rig": lambda: DEFAULT_CASES, "emotions": emotion_cases, "mouth": lambda: MOUTH_CASES}


def head_box(portrait: Portrait) -> tuple[int, int, int, int]:
    """A square around the face with room for the head to turn and tilt, kept inside the frame."""
    x0, y0, x1, y1 = portrait.face_box()
    side = min(portrait.size, int(round(max(x1 - x0, y1 - y0) * (1 + 2 * HEAD_MARGIN))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(round(cx - side / 2), 0, portrait.size - side))
    top = int(np.clip(round(cy - side / 2), 0, portrait.size - side))
    return left, top, left + side, top + side


def crop_tile(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """One rendered frame → its tile: the head crop, resized to TILE × TILE."""
    x0, y0, x1, y1 = box
    crop = frame[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if crop.shape[0] > TILE else cv2.INTER_CUBIC
    return cv2.resize(crop, (TILE, TILE), interpolation=interp)


def sheet_shape(count: int, columns: int = COLUMNS) -> tuple[int, int]:
    """(height, width) of a sheet of `count` tiles."""
    cols = max(1, min(columns, count))
    rows = max(1, math.ceil(count / cols))
    return rows * (TILE + LABEL_HEIGHT) + (rows + 1) * GAP, cols * TILE + (cols + 1) * GAP


def tile_origin(index: int, columns: int = COLUMNS) -> tuple[int, int]:
    """(x, y) of the top-left pixel of tile `index` (its label strip is under it)."""
    row, col = divmod(index, columns)
    return GAP + col * (TILE + GAP), GAP + row * (TILE + LABEL_HEIGHT + GAP)


def _draw_label(sheet: np.ndarray, text: str, x: int, y: int) -> None:
    """`text` centred in the strip of width TILE whose top-left is (x, y), shrunk if it would not fit."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = 0.55
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    if w > TILE - 8:
        scale *= (TILE - 8) / w
        (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    org = (x + (TILE - w) // 2, y + (LABEL_HEIGHT + h) // 2 - 1)
    cv2.putText(sheet, text, org, font, scale, LABEL_BGR, thickness, cv2.LINE_AA)


def contact_sheet(portrait: Portrait, cases: tuple[SheetCase, ...] | list[SheetCase] = DEFAULT_CASES,
                  columns: int = COLUMNS) -> np.ndarray:
    """Render each case through the rig and renderer; return the labelled grid as a BGR uint8 image."""
    from avatar_rt.render.renderer import PortraitRenderer
    from avatar_rt.rig.landmark_rig import LandmarkRig

    if not cases:
        raise ValueError("a contact sheet needs at least one case")
    columns = max(1, min(columns, len(cases)))
    rig, renderer = LandmarkRig(portrait), PortraitRenderer(portrait)
    box = head_box(portrait)
    height, width = sheet_shape(len(cases), columns)
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = SHEET_BGR
    for i, case in enumerate(cases):
        frame = renderer.render(rig.pose(case.params.clipped()))
        x, y = tile_origin(i, columns)
        sheet[y:y + TILE, x:x + TILE] = crop_tile(frame, box)
        _draw_label(sheet, case.label, x, y + TILE)
    return sheet


def mouth_box(portrait: Portrait) -> tuple[int, int, int, int]:
    """A square around the mouth with room for the jaw to drop, kept inside the frame."""
    x0, y0, x1, y1 = portrait.mouth_box()
    side = min(portrait.size, int(round(max(x1 - x0, y1 - y0) * 1.25)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(round(cx - side / 2), 0, portrait.size - side))
    top = int(np.clip(round(cy - side / 2), 0, portrait.size - side))
    return left, top, left + side, top + side


def mouth_sheet(portraits: list[Portrait], cases: tuple[SheetCase, ...] | list[SheetCase] = MOUTH_CASES
                ) -> np.ndarray:
    """The mouth gallery: one row per portrait, one close-up of the mouth per case."""
    from avatar_rt.render.renderer import PortraitRenderer
    from avatar_rt.rig.landmark_rig import LandmarkRig

    if not cases or not portraits:
        raise ValueError("a mouth sheet needs at least one portrait and one case")
    columns = len(cases)
    height, width = sheet_shape(len(cases) * len(portraits), columns)
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = SHEET_BGR
    for row, portrait in enumerate(portraits):
        rig, renderer = LandmarkRig(portrait), PortraitRenderer(portrait)
        box = mouth_box(portrait)
        for col, case in enumerate(cases):
            frame = renderer.render(rig.pose(case.params.clipped()))
            x, y = tile_origin(row * columns + col, columns)
            sheet[y:y + TILE, x:x + TILE] = crop_tile(frame, box)
            _draw_label(sheet, case.label, x, y + TILE)
    return sheet


def write_png(sheet: np.ndarray, path: Path) -> None:
    """Write a sheet as a PNG; every failure to write is one clear AvatarRtError."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise AvatarRtError(f"the contact sheet is written as PNG; name the output *.png (got {path})",
                            code="bad_output")
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:
        raise AvatarRtError(f"cannot encode the contact sheet for {path}", code="bad_output")
    try:
        path.write_bytes(buf.tobytes())
    except OSError as exc:
        raise AvatarRtError(f"cannot write {path}: {exc.strerror or exc}", code="bad_output") from exc


def write_contact_sheet(portrait: Portrait, path: Path,
                        cases: tuple[SheetCase, ...] | list[SheetCase] = DEFAULT_CASES) -> np.ndarray:
    """Render the sheet and write it as a PNG; every failure to write is one clear AvatarRtError."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise AvatarRtError(f"the contact sheet is written as PNG; name the output *.png (got {path})",
                            code="bad_output")
    sheet = contact_sheet(portrait, cases)
    write_png(sheet, path)
    return sheet
