"""`avatar-rt render --contact-sheet`: a PNG grid of labelled frames, one per motion setting.

Run as a user runs it (a subprocess), then read back: the grid has the
expected size, every tile shows something different (the parameters act), the
rest tile is exactly the rest render, and bad command lines end in a usage
error or one clear `avatar-rt:` line, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
from avatar_rt.contact_sheet import (
    DEFAULT_CASES,
    LABEL_HEIGHT,
    TILE,
    SheetCase,
    contact_sheet,
    crop_tile,
    head_box,
    sheet_shape,
    tile_origin,
)
from avatar_rt.motion.params import MotionParams
from avatar_rt.render.renderer import PortraitRenderer
from avatar_rt.rig.landmark_rig import LandmarkRig
from conftest import REPO


def avatar_rt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatar_rt", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("avatar-rt:")]


@pytest.fixture(scope="module")
def sheet(tmp_path_factory) -> np.ndarray:
    out = tmp_path_factory.mktemp("sheet") / "sheet.png"
    proc = avatar_rt("render", "--contact-sheet", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"wrote {out}" in proc.stdout
    image = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a readable PNG"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return image


def tiles(image: np.ndarray) -> list[np.ndarray]:
    return [image[y:y + TILE, x:x + TILE] for x, y in (tile_origin(i) for i in range(len(DEFAULT_CASES)))]


def labels(image: np.ndarray) -> list[np.ndarray]:
    return [image[y + TILE:y + TILE + LABEL_HEIGHT, x:x + TILE]
            for x, y in (tile_origin(i) for i in range(len(DEFAULT_CASES)))]


def changed(a: np.ndarray, b: np.ndarray, threshold: int = 12) -> int:
    """Pixels where any channel differs by more than `threshold`."""
    return int((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > threshold).sum())


def test_sheet_is_a_grid_of_the_expected_size(sheet):
    height, width = sheet_shape(len(DEFAULT_CASES))
    print(f"contact sheet: {len(DEFAULT_CASES)} tiles, {width}×{height}")
    assert sheet.shape == (height, width, 3) and sheet.dtype == np.uint8
    assert len(DEFAULT_CASES) == 18 and (height, width) == (3 * (TILE + LABEL_HEIGHT) + 4 * 8, 6 * TILE + 7 * 8)


def test_default_cases_cover_the_issue(sheet):
    names = " ".join(case.label for case in DEFAULT_CASES)
    from avatar_rt.motion.params import PARAMS

    ends = {p.name.removeprefix("head_"): (p.low, p.high) for p in PARAMS if p.group == "head"}
    poses = [f"{name} {v:+g}" for name in ("yaw", "pitch", "roll") for v in ends[name]]
    for needed in ("rest", "jaw_open", "lip_round", "lip_spread", "blink", *poses, "smile", "brows", "gaze"):
        assert needed in names, needed
    assert len({case.label for case in DEFAULT_CASES}) == len(DEFAULT_CASES), "two tiles share a label"


def test_rest_tile_is_the_rest_render(sheet):
    portrait = load_portrait(DEFAULT_PORTRAIT, size=512)  # what the CLI analysed: same input, same landmarks
    frame = PortraitRenderer(portrait).render(LandmarkRig(portrait).pose(MotionParams()))
    assert DEFAULT_CASES[0].label == "rest" and DEFAULT_CASES[0].params == MotionParams()
    assert np.array_equal(tiles(sheet)[0], crop_tile(frame, head_box(portrait)))


def test_every_tile_differs_from_rest_and_from_each_other(sheet):
    ts = tiles(sheet)
    from_rest = {case.label: changed(t, ts[0]) for case, t in zip(DEFAULT_CASES[1:], ts[1:])}
    print("pixels changed from rest:", from_rest)
    for label, n in from_rest.items():
        assert n > 150, f"'{label}' looks like rest: the parameter did nothing visible"
    for i in range(len(ts)):
        for j in range(i + 1, len(ts)):
            assert changed(ts[i], ts[j]) > 50, f"'{DEFAULT_CASES[i].label}' and '{DEFAULT_CASES[j].label}' look alike"


def test_every_tile_has_a_visible_label(sheet):
    strips = labels(sheet)
    for case, strip in zip(DEFAULT_CASES, strips):
        ink = int((strip.max(axis=2) < 120).sum())  # dark text on the light sheet
        assert ink > 40, f"no readable label under '{case.label}'"
    assert changed(strips[5], strips[6], threshold=60) > 10, "yaw − and yaw + have the same label"


def test_tiles_are_the_head_not_the_frame():
    portrait = load_portrait(DEFAULT_PORTRAIT, size=512)
    x0, y0, x1, y1 = head_box(portrait)
    fx0, fy0, fx1, fy1 = portrait.face_box()
    assert x1 - x0 == y1 - y0 < portrait.size, "the crop should be a square smaller than the frame"
    assert x0 <= fx0 and y0 <= fy0 and x1 >= fx1 and y1 >= fy1, "the crop cuts into the face"
    assert 0 <= x0 and 0 <= y0 and x1 <= portrait.size and y1 <= portrait.size


def test_custom_cases_and_columns():
    portrait = load_portrait(DEFAULT_PORTRAIT, size=512)
    cases = [SheetCase("rest", MotionParams()), SheetCase("jaw", MotionParams(jaw_open=1.0)),
             SheetCase("wink", MotionParams(blink_r=1.0))]
    image = contact_sheet(portrait, cases, columns=2)
    assert image.shape[:2] == sheet_shape(3, columns=2) == (2 * (TILE + LABEL_HEIGHT) + 3 * 8, 2 * TILE + 3 * 8)
    # Out-of-range values are clipped to the documented range, not rendered wild.
    wild = contact_sheet(portrait, [SheetCase("jaw 5", MotionParams(jaw_open=5.0))])
    sane = contact_sheet(portrait, [SheetCase("jaw 5", MotionParams(jaw_open=1.0))])
    assert np.array_equal(wild, sane)
    with pytest.raises(ValueError):
        contact_sheet(portrait, [])


def test_another_avatar(tmp_path):
    """--avatar: a different crop of the shippable photo, mirrored, makes its own sheet."""
    photo = cv2.imread(str(DEFAULT_PORTRAIT))
    avatar = tmp_path / "mirrored.jpg"
    cv2.imwrite(str(avatar), cv2.flip(photo[30:, 20:500], 1))
    out = tmp_path / "sheet.png"
    proc = avatar_rt("render", "--contact-sheet", str(out), "--avatar", str(avatar))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cv2.imread(str(out)).shape[:2] == sheet_shape(len(DEFAULT_CASES))


# --------------------------------------------------------------------------- bad command lines


@pytest.mark.parametrize("args, says", [
    ((), "the following arguments are required: --audio, -o/--output (or --contact-sheet"),
    (("--audio", "speech.wav"), "the following arguments are required: -o/--output"),
    (("-o", "out.mp4"), "the following arguments are required: --audio"),
    (("--contact-sheet", "s.png", "--audio", "speech.wav"), "it takes no --audio or -o/--output"),
    (("--contact-sheet", "s.png", "-o", "out.mp4"), "it takes no --audio or -o/--output"),
    (("--contact-sheet", "sheet.jpg"), "--contact-sheet writes a PNG: name it *.png"),
])
def test_usage_errors(args, says):
    proc = avatar_rt("render", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("usage: avatar-rt render"), proc.stderr
    assert says in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", ["missing avatar", "no face", "unwritable"])
def test_failures_are_one_clear_line(tmp_path, case):
    out, extra = tmp_path / "sheet.png", []
    if case == "missing avatar":
        extra = ["--avatar", str(tmp_path / "nope.jpg")]
    elif case == "no face":
        photo = cv2.imread(str(DEFAULT_PORTRAIT))
        cv2.imwrite(str(tmp_path / "sky.jpg"), cv2.resize(photo[0:200, 380:512], (400, 600)))
        extra = ["--avatar", str(tmp_path / "sky.jpg")]
    else:
        out = tmp_path / "no-such-dir" / "sheet.png"
    proc = avatar_rt("render", "--contact-sheet", str(out), *extra)
    print(f"{case}: {error_lines(proc.stderr)}")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr, proc.stderr[-1500:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and proc.stderr.strip().splitlines()[-1] == lines[0]
    assert not out.exists()
    if case == "no face":
        assert "no face was found" in lines[0]
