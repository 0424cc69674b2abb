"""Reference analysis: real portraits of different sizes and crops work; unusable ones are refused clearly.

We can ship no photo but the bundled NASA portrait, so every test image is made
from it at test time: crops, borders, mirror images, a shrunken copy on a big
plain canvas, two copies side by side, and the head turned in 3D with a
piecewise-affine warp driven by MediaPipe's own depth estimates.
"""

from __future__ import annotations

import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import (
    DEFAULT_PORTRAIT,
    MAX_FRONTAL_ASYMMETRY,
    MIN_INTER_OCULAR_PX,
    analyze_portrait,
    detect_faces,
    find_faces,
    frontal_asymmetry,
    load_portrait,
)
from avatar_rt.errors import FaceError

# --------------------------------------------------------------------------- test images


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """The bundled portrait, BGR."""
    return cv2.imread(str(DEFAULT_PORTRAIT))


@pytest.fixture(scope="module")
def photo_landmarks(photo) -> np.ndarray:
    return detect_faces(rgb(photo))[0]


def rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[:, :, ::-1])


def jpeg(bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def backdrop(photo: np.ndarray) -> np.ndarray:
    """The colour of the portrait's studio backdrop (top-left corner)."""
    return photo[20:60, 20:60].reshape(-1, 3).mean(axis=0).astype(np.uint8)


def place(photo: np.ndarray, width: int, height: int, x: int, y: int, scale: float = 1.0) -> np.ndarray:
    """The photo, scaled, pasted at (x, y) on a plain canvas of the backdrop colour."""
    img = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1 else photo
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = backdrop(photo)
    h, w = img.shape[:2]
    canvas[y:y + h, x:x + w] = img
    return canvas


def roll(photo: np.ndarray, degrees: float) -> np.ndarray:
    h, w = photo.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h * 0.43), degrees, 1.0)
    return cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def _delaunay(points: np.ndarray, width: int, height: int) -> np.ndarray:
    subdiv = cv2.Subdiv2D((0, 0, width, height))
    for x, y in points:
        subdiv.insert((float(x), float(y)))
    tris = []
    for t in subdiv.getTriangleList().reshape(-1, 3, 2):
        d = np.linalg.norm(points[None, :, :] - t[:, None, :], axis=2)
        idx = d.argmin(axis=1)
        if d[np.arange(3), idx].max() < 0.5:  # drop triangles on Subdiv2D's virtual outer vertices
            tris.append(idx)
    return np.array(tris)


def turn_head(photo: np.ndarray, face: np.ndarray, degrees: float) -> np.ndarray:
    """The head turned `degrees` about a vertical axis (+ turns it towards image left), using the mesh's depth.

    Each face landmark is rotated in 3D about a vertical axis through the nose
    at the depth of the eyes; a ring around the face (hair, ears, neck) follows
    most of the way; the frame's border stays put. Triangles are drawn far to
    near, so the nose hides the far cheek as it would on a real turned head.
    """
    h, w = photo.shape[:2]
    a = np.radians(degrees)
    pts = face[: lm.NUM_FACE_LANDMARKS].astype(np.float64)
    cx = pts[lm.NOSE_TIP, 0]
    cz = pts[[33, 133, 362, 263], 2].mean()
    x, z = pts[:, 0] - cx, pts[:, 2] - cz
    moved = np.stack([cx + x * np.cos(a) + z * np.sin(a), pts[:, 1]], axis=1)
    depth = -x * np.sin(a) + z * np.cos(a)
    oval = np.array(lm.FACE_OVAL)
    centre = pts[oval, :2].mean(axis=0)
    ring_src = centre + 1.5 * (pts[oval, :2] - centre)
    ring_dst = ring_src + 0.7 * (moved[oval] - pts[oval, :2])
    border = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1],
                       [w / 2, 0], [w / 2, h - 1], [0, h / 2], [w - 1, h / 2]], dtype=np.float64)
    src = np.concatenate([pts[:, :2], ring_src, border])
    dst = np.concatenate([moved, ring_dst, border])
    z_all = np.concatenate([depth, np.full(len(ring_src) + len(border), depth.max() + 1)])
    tris = _delaunay(src, w, h)
    out = photo.copy()
    for tri in tris[np.argsort(-z_all[tris].mean(axis=1))]:  # MediaPipe z grows away from the camera
        s, d = src[tri].astype(np.float32), dst[tri].astype(np.float32)
        x0, y0 = np.maximum(np.floor(d.min(axis=0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(d.max(axis=0)).astype(int) + 1, [w, h])
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(s, d)
        m[:, 2] -= (x0, y0)
        patch = cv2.warpAffine(photo, m, (x1 - x0, y1 - y0), borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((d - (x0, y0)) * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
        alpha = mask[..., None].astype(np.float32) / 255
        roi = out[y0:y1, x0:x1]
        roi[:] = (roi * (1 - alpha) + patch * alpha).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- refusals


def refusal(bgr: np.ndarray) -> FaceError:
    """Analyse the image as an upload (JPEG bytes, the server's path) and return the refusal."""
    with pytest.raises(FaceError) as info:
        load_portrait(jpeg(bgr))
    err = info.value
    print(f"{err.code}: {err.message}")
    assert err.status == 422
    assert err.to_json() == {"error": {"code": err.code, "message": err.message}}
    return err


def test_no_face(photo):
    # Sky and the shuttle model at the right of the portrait, upscaled: a real photo, no face.
    err = refusal(cv2.resize(photo[0:200, 380:512], (400, 600)))
    assert err.code == "no_face"
    assert "no face" in err.message and "use a front-facing portrait" in err.message


def test_two_faces(photo):
    err = refusal(np.concatenate([photo, cv2.flip(photo, 1)], axis=1))
    assert err.code == "multiple_faces"
    assert "2 faces" in err.message and "exactly one person" in err.message


def test_two_small_faces_are_two_faces_not_none(photo):
    """Two people small in a group photo: Face Mesh alone sees nobody; the detector search sees both."""
    canvas = place(photo, 1024, 768, 250, 250, scale=0.25)
    small = cv2.resize(photo, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    canvas[250:250 + small.shape[0], 600:600 + small.shape[1]] = cv2.flip(small, 1)
    assert refusal(canvas).code == "multiple_faces"


@pytest.mark.parametrize("scale", [0.25, 0.2])
def test_face_too_small(photo, scale):
    """The portrait shrunk into a big plain canvas: the face is found, measured, and refused as too small."""
    canvas = place(photo, 1024, 768, 600, 200, scale=scale)
    assert not detect_faces(rgb(canvas)), "Face Mesh alone finds a face this small: the test no longer tests the search"
    err = refusal(canvas)
    assert err.code == "face_too_small"
    measured = float(re.search(r"\((\d+) px between the eyes", err.message).group(1))
    assert abs(measured - 71.7 * scale) <= 1.5  # the bundled portrait's inter-ocular distance, scaled
    assert f"at least {MIN_INTER_OCULAR_PX:.0f} needed" in err.message
    assert "crop the photo closer" in err.message


def turned(photo: np.ndarray, face: np.ndarray, degrees: float) -> np.ndarray:
    """The head turned `degrees` towards image right, or (negative) the mirror image of that: towards image left.

    The warp is more faithful turning this way (the far cheek of the bundled
    portrait tears less), so the other direction is its mirror image.
    """
    img = turn_head(photo, face, -abs(degrees))
    return img if degrees > 0 else cv2.flip(img, 1)


@pytest.mark.parametrize("degrees", [-55, 55])
def test_face_in_profile(photo, photo_landmarks, degrees):
    img = turned(photo, photo_landmarks, degrees)
    faces = detect_faces(rgb(img))
    assert len(faces) == 1, "the turned head must still be seen as a face for this test to mean anything"
    print(f"turned {degrees:+d}°: frontal asymmetry {frontal_asymmetry(faces[0]):+.3f}")
    err = refusal(img)
    assert err.code == "face_in_profile"
    assert "turned too far to the side" in err.message and "looking straight at the camera" in err.message


def test_frontal_asymmetry_separates_frontal_from_turned(photo, photo_landmarks):
    """Frontal variants stay well under the limit (tilt included); heads turned 45° and more are over it."""
    frontal = {
        "bundled": photo,
        "mirrored": cv2.flip(photo, 1),
        "tilted -30°": roll(photo, -30),
        "tilted +30°": roll(photo, 30),
        "turned -15°": turned(photo, photo_landmarks, -15),
        "turned +15°": turned(photo, photo_landmarks, 15),
    }
    strongly_turned = {f"turned {d:+d}°": turned(photo, photo_landmarks, d) for d in (-60, -45, 45, 60)}
    values = {}
    for name, img in {**frontal, **strongly_turned}.items():
        faces = detect_faces(rgb(img))
        assert len(faces) == 1, name
        values[name] = frontal_asymmetry(faces[0])
    print("frontal asymmetry (limit %.2f): " % MAX_FRONTAL_ASYMMETRY
          + ", ".join(f"{k} {v:+.3f}" for k, v in values.items()))
    for name in frontal:
        assert abs(values[name]) < 0.6 * MAX_FRONTAL_ASYMMETRY, name
    for name in strongly_turned:
        assert abs(values[name]) > MAX_FRONTAL_ASYMMETRY, name
    # The sign follows the direction of the turn.
    assert values["turned +45°"] > 0 > values["turned -45°"]


@pytest.mark.parametrize("rotation", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE])
def test_sideways_photo(photo, rotation):
    """A photo stored sideways with no EXIF tag to say so: the face is found, and refused as rotated."""
    err = refusal(cv2.rotate(photo, rotation))
    assert err.code == "face_rotated"
    assert "sideways" in err.message and "rotate the photo" in err.message


def test_tilted_head_is_not_mistaken_for_a_profile(photo):
    """A head tilted 30° (roll) is frontal: it must be accepted, not refused as turned or rotated."""
    for degrees in (-30, 30):
        portrait = analyze_portrait(rgb(roll(photo, degrees)))
        assert portrait.landmarks.shape == (478, 3)


# --------------------------------------------------------------------------- real portraits


def variants(photo: np.ndarray) -> dict[str, np.ndarray]:
    h, w = photo.shape[:2]
    wide = cv2.resize(photo, (700, 700), interpolation=cv2.INTER_CUBIC)
    landscape = place(wide, 1024, 768, 20, 40)  # face well left of centre in a landscape frame
    tight = photo[60:420, 106:406]  # just the head and collar, 300×360
    mirrored = cv2.copyMakeBorder(cv2.flip(cv2.resize(photo, (440, 440), interpolation=cv2.INTER_AREA), 1),
                                  60, 140, 150, 50, cv2.BORDER_CONSTANT, value=backdrop(photo).tolist())
    small_in_big = place(photo, 2000, 1500, 1300, 500, scale=0.4)  # 29 px between the eyes in a 3 MP photo
    return dict(zip(VARIANTS, (landscape, tight, mirrored, small_in_big)))


VARIANTS = ("landscape 1024×768, face left", "tight 300×360", "mirrored 640×640 with border",
            "small face in 2000×1500")


@pytest.mark.parametrize("name", VARIANTS)
def test_portrait_variants_analyse_to_a_centred_square(photo, name):
    img = variants(photo)[name]
    portrait = load_portrait(jpeg(img))
    pts = portrait.landmarks
    x0, y0, x1, y1 = portrait.face_box()
    cx, cy = (x0 + x1) / 2 / portrait.size, (y0 + y1) / 2 / portrait.size
    print(f"{name}: input {img.shape[1]}×{img.shape[0]} → {portrait.image.shape}, "
          f"IOD {portrait.inter_ocular:.1f} px, face box {[x0, y0, x1, y1]}, centre ({cx:.2f}, {cy:.2f}), "
          f"asymmetry {frontal_asymmetry(pts):+.3f}")
    assert portrait.image.shape == (512, 512, 3) and portrait.image.dtype == np.uint8
    assert pts.shape == (478, 3) and np.isfinite(pts).all()
    assert (pts[:, :2] >= 0).all() and (pts[:, :2] < 512).all(), "a landmark outside the frame"
    assert 55 <= portrait.inter_ocular <= 140
    assert abs(cx - 0.5) < 0.08, "the crop should centre the face horizontally"
    assert 0.3 < cy < 0.6
    # The eyes are level and above the nose, the nose above the mouth: an upright face.
    right, left = lm.eye_centers(pts)
    assert abs(right[1] - left[1]) < 0.1 * portrait.inter_ocular
    assert max(right[1], left[1]) < pts[lm.NOSE_TIP, 1] < pts[13, 1]


def test_landscape_variant_has_its_face_off_centre(photo):
    img = variants(photo)[VARIANTS[0]]
    nose_x = detect_faces(rgb(img))[0][lm.NOSE_TIP, 0] / img.shape[1]
    print(f"landscape input: nose at {nose_x:.2f} of the width")
    assert nose_x < 0.4


def test_small_face_in_a_big_photo_is_found_by_the_search(photo):
    """29 px between the eyes is enough to animate, but too small a part of a 2000×1500 frame for Face Mesh alone."""
    img = variants(photo)[VARIANTS[3]]
    assert not detect_faces(rgb(img)), "Face Mesh alone finds it: the variant no longer exercises the search"
    faces = find_faces(rgb(img))
    assert len(faces) == 1 and abs(lm.inter_ocular(faces[0]) - 0.4 * 71.7) < 1.5


def test_variants_are_the_same_face_at_the_same_scale(photo):
    """The crop is normalised to the face: every variant gives about the same inter-ocular distance."""
    iods = {name: load_portrait(jpeg(img)).inter_ocular for name, img in variants(photo).items()
            if not name.startswith("tight")}  # the tight crop cannot fit 2.6 face heights; its face is larger
    print("IOD per variant:", {k: round(v, 1) for k, v in iods.items()})
    values = np.array(list(iods.values()))
    assert values.max() / values.min() < 1.1


@pytest.mark.parametrize("orientation, undo", [(6, cv2.ROTATE_90_COUNTERCLOCKWISE), (8, cv2.ROTATE_90_CLOCKWISE),
                                               (3, cv2.ROTATE_180)])
def test_exif_rotated_jpeg_is_turned_upright(photo, orientation, undo):
    """A phone photo stored sideways with an EXIF Orientation tag is analysed the way it is displayed."""
    stored = cv2.rotate(photo, undo)  # the pixels as the camera stored them
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb(stored)).save(buf, format="JPEG", quality=95, exif=exif)
    portrait = load_portrait(buf.getvalue())
    upright = load_portrait(jpeg(photo))
    right, left = lm.eye_centers(portrait.landmarks)
    assert right[0] < left[0] and max(right[1], left[1]) < portrait.landmarks[lm.NOSE_TIP, 1], "not upright"
    assert abs(portrait.inter_ocular - upright.inter_ocular) < 0.05 * upright.inter_ocular
    diff = np.abs(portrait.image.astype(np.int16) - upright.image.astype(np.int16)).mean()
    print(f"orientation {orientation}: mean difference from the upright analysis {diff:.2f}")
    assert diff < 8.0
