"""Reference analysis: once per avatar, turn a photo into the square portrait the engine animates.

Decoding is guarded (size is read from the header before any pixel is decoded),
the face is found with MediaPipe Face Mesh (478 landmarks), the photo is cropped
to a head-and-shoulders square around it and resized, and the landmarks are
measured again on that crop so everything downstream works in output pixels.

Face Mesh's own detector only finds faces that fill a good part of the frame.
When it finds none, MediaPipe's full-range face detector looks again over the
whole photo and overlapping tiles of it, and each face it finds is confirmed by
running the mesh on a crop around it. So a small face is measured and refused
as too small (not reported missing), and a face that is small in a large photo
but big enough in pixels is still used.

Refusals (FaceError, HTTP 422), each naming the problem and what to do:
no_face, multiple_faces, face_too_small, face_in_profile, face_rotated.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from avatar_rt.avatar import landmarks as lm
from avatar_rt.errors import FaceError, ImageError, ImageTooLargeError

MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 40_000_000
MIN_INTER_OCULAR_PX = 20.0
# Nose-tip offset from the eye midpoint along the eye line, in inter-ocular
# units, past which the face is too far turned for a frontal rig to animate
# believably. Measured on the bundled portrait and its head turned in 3D by
# tests/test_reference.py: frontal 0.01–0.03 (tilted ±30° included), turned
# 15° 0.15–0.17, 30° about 0.34, 45° 0.45–0.53, 60° 0.62–0.83; so heads turned
# past roughly 35–40° are refused.
MAX_FRONTAL_ASYMMETRY = 0.38
# A head tilted further than this (a sideways or upside-down photo, usually) is
# refused: the crop, the rig and the renderer all assume an upright face.
MAX_TILT_DEGREES = 45.0
# A second face at least this fraction of the main face's size makes the choice ambiguous.
SECOND_FACE_RATIO = 0.5
# The crop is this many face heights on a side, so hair, neck and shoulders are in frame.
CROP_FACE_HEIGHTS = 2.6
DETECT_MAX_SIDE = 1280
# The fallback search for faces Face Mesh missed: tiles this many pixels on a
# side (after downscaling), at every scale from the whole photo down to an
# eighth of it; each found face is confirmed by the mesh on a crop this many
# face boxes wide, resized to CONFIRM_SIDE.
SEARCH_TILE = 384
SEARCH_MIN_FRACTION = 1 / 8
SEARCH_MAX_FACES = 4
CONFIRM_CROP_BOXES = 3.0
CONFIRM_SIDE = 384
# decode_image enforces the limits above from the header, with a message that
# names the size; Pillow's own bomb check would fire first with a vaguer one.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_PORTRAIT = Path(__file__).resolve().parent.parent / "assets" / "astronaut_512.jpg"


@dataclass(frozen=True)
class Portrait:
    """A prepared reference: the square image the engine animates and its landmarks."""

    image: np.ndarray  # (size, size, 3) uint8, BGR
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels of `image`, z in the same scale
    # The photo as analysed, before its parted lips were closed for the rest pose (rest_mouth.py);
    # None when the lips met already or the photo's own expression is kept. Its teeth are the ones shown.
    photo: np.ndarray | None = None
    photo_landmarks: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def inter_ocular(self) -> float:
        return lm.inter_ocular(self.landmarks)

    def face_box(self) -> list[int]:
        return _box(self.landmarks[: lm.NUM_FACE_LANDMARKS, :2], 0.0, self.size)

    def mouth_box(self) -> list[int]:
        mouth = self.landmarks[list(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER), :2]
        # Leave room below the lips for the jaw to drop.
        x0, y0, x1, y1 = _box(mouth, 0.15 * self.inter_ocular, self.size)
        y1 = min(self.size, int(y1 + 0.35 * self.inter_ocular))
        return [x0, y0, x1, y1]


def _box(points: np.ndarray, pad: float, size: int) -> list[int]:
    x0, y0 = np.floor(points.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + pad).astype(int)
    return [max(0, int(x0)), max(0, int(y0)), min(size, int(x1)), min(size, int(y1))]


def decode_image(data: bytes) -> np.ndarray:
    """Bytes → RGB uint8, refusing non-images and oversized images before decoding pixels."""
    if not data:
        raise ImageError("the image is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                raise ImageTooLargeError(
                    f"the image is {width}×{height}; the largest accepted is "
                    f"{MAX_IMAGE_SIDE} pixels a side and {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
                )
            img = ImageOps.exif_transpose(img)
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ImageError("the file is not an image this server can read (JPEG, PNG, WebP, BMP)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"the image could not be decoded: {exc}") from exc
    if min(rgb.shape[:2]) < 64:
        raise ImageError(f"the image is {rgb.shape[1]}×{rgb.shape[0]}; at least 64×64 is needed")
    return rgb


_mesh_lock = threading.Lock()
_mesh = None


def detect_faces(rgb: np.ndarray) -> list[np.ndarray]:
    """All faces in an RGB image as (478, 3) landmark arrays in its pixels, largest first."""
    global _mesh
    import mediapipe as mp  # heavy import, deferred until a portrait is analysed

    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    with _mesh_lock:  # one graph, used by one thread at a time
        if _mesh is None:
            _mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, refine_landmarks=True, max_num_faces=3, min_detection_confidence=0.5
            )
        result = _mesh.process(np.ascontiguousarray(small))
    faces = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
        pts *= np.array([w, h, w], dtype=np.float32)
        faces.append(pts)
    faces.sort(key=lambda p: -lm.inter_ocular(p))
    return faces


_detector_lock = threading.Lock()
_detector = None


def detect_face_boxes(rgb: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Faces of any size as (score, [x0, y0, x1, y1] in pixels of `rgb`), most confident first.

    MediaPipe's full-range detector sees a 192-pixel view, so it runs on the
    whole photo and on half-overlapping tiles at halving scales, down to tiles
    an eighth of the photo's longer side; detections of one face from several
    tiles are merged. Once a scale has found a face, one finer scale is still
    searched (a second face half the size matters), no more.
    """
    global _detector
    import mediapipe as mp

    h, w = rgb.shape[:2]
    found: list[tuple[float, np.ndarray]] = []
    side = float(max(h, w))
    found_at_coarser = False
    with _detector_lock:
        if _detector is None:
            _detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        while True:
            scale = min(1.0, SEARCH_TILE / side)
            img = (cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
                   if scale < 1 else rgb)
            ih, iw = img.shape[:2]
            tile = min(SEARCH_TILE, max(ih, iw))
            for y in _tile_starts(ih, tile):
                for x in _tile_starts(iw, tile):
                    view = np.ascontiguousarray(img[y:y + tile, x:x + tile])
                    vh, vw = view.shape[:2]
                    for det in _detector.process(view).detections or []:
                        bb = det.location_data.relative_bounding_box
                        box = np.array([x + bb.xmin * vw, y + bb.ymin * vh,
                                        x + (bb.xmin + bb.width) * vw, y + (bb.ymin + bb.height) * vh]) / scale
                        found.append((float(det.score[0]), box))
            side /= 2
            if side < SEARCH_TILE or side < SEARCH_MIN_FRACTION * max(h, w) or found_at_coarser:
                break
            found_at_coarser = bool(found)
    found.sort(key=lambda f: -f[0])
    kept: list[tuple[float, np.ndarray]] = []
    for score, box in found:  # a face seen in several tiles (or half of it at a tile's edge) counts once
        if all(_overlap(box, other) < 0.5 for _, other in kept):
            kept.append((score, box))
    return kept


def _tile_starts(length: int, tile: int) -> list[int]:
    return sorted(set(range(0, max(1, length - tile + 1), max(1, tile // 2))) | {max(0, length - tile)})


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(iw * ih / smaller) if smaller > 0 else 0.0


def find_faces(rgb: np.ndarray) -> list[np.ndarray]:
    """Every face as (478, 3) landmarks in pixels of `rgb`, largest first, small ones included.

    Face Mesh on the whole photo first; if it finds nothing, the detector's
    boxes, each confirmed by Face Mesh on an enlarged crop around it (a box the
    mesh cannot confirm is not a face it could animate).
    """
    faces = detect_faces(rgb)
    if faces:
        return faces
    h, w = rgb.shape[:2]
    for _, box in detect_face_boxes(rgb)[:SEARCH_MAX_FACES]:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = CONFIRM_CROP_BOXES * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        scale = CONFIRM_SIDE / max(x1 - x0, y1 - y0)
        crop = cv2.resize(rgb[y0:y1, x0:x1], (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        candidates = detect_faces(crop)
        if not candidates:
            continue
        centre = np.array([(cx - x0) * scale, (cy - y0) * scale])
        pts = min(candidates, key=lambda p: float(np.linalg.norm(p[lm.NOSE_TIP, :2] - centre))).copy()
        pts /= scale
        pts[:, 0] += x0
        pts[:, 1] += y0
        if all(np.linalg.norm(pts[lm.NOSE_TIP, :2] - f[lm.NOSE_TIP, :2]) > 0.5 * lm.inter_ocular(f) for f in faces):
            faces.append(pts)
    faces.sort(key=lambda p: -lm.inter_ocular(p))
    return faces


def frontal_asymmetry(face: np.ndarray) -> float:
    """How far the nose tip sits from the eye midpoint along the eye line, in inter-ocular units.

    About 0 for a frontal face and growing with the head's turn (yaw); measured
    along the eye line, so a tilted head (roll) is not mistaken for a turned one.
    """
    right, left = lm.eye_centers(face)
    axis = (left - right)[:2]
    iod = float(np.linalg.norm(axis))
    return float(np.dot(face[lm.NOSE_TIP, :2] - (right + left)[:2] / 2, axis) / (iod * iod))


def eye_line_angle(face: np.ndarray) -> float:
    """The eye line's angle from horizontal in degrees (0 upright, ±90 a sideways photo, 180 upside down)."""
    right, left = lm.eye_centers(face)
    return float(np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))


def _check_face(faces: list[np.ndarray]) -> np.ndarray:
    if not faces:
        raise FaceError("no face was found in the image; use a front-facing portrait with the face clearly "
                        "visible (if the face is small in the photo, crop closer to it)",
                        code="no_face")
    face = faces[0]
    iod = lm.inter_ocular(face)
    if len(faces) > 1 and lm.inter_ocular(faces[1]) >= SECOND_FACE_RATIO * iod:
        raise FaceError(f"{len(faces)} faces were found; use a portrait with exactly one person, "
                        "or crop the photo to one face", code="multiple_faces")
    if iod < MIN_INTER_OCULAR_PX:
        raise FaceError(f"the face is too small to animate ({iod:.0f} px between the eyes, at least "
                        f"{MIN_INTER_OCULAR_PX:.0f} needed); crop the photo closer to the face or use a "
                        "larger photo", code="face_too_small")
    asymmetry = frontal_asymmetry(face)
    if abs(asymmetry) > MAX_FRONTAL_ASYMMETRY:
        raise FaceError("the face is turned too far to the side (a profile or three-quarter view); use a "
                        "portrait looking straight at the camera", code="face_in_profile")
    tilt = eye_line_angle(face)
    if abs(tilt) > MAX_TILT_DEGREES:
        how = "sideways" if abs(tilt) < 135 else "upside down"
        raise FaceError(f"the face is tilted {abs(tilt):.0f}° from upright (is the photo {how}?); rotate the "
                        "photo so the face is upright", code="face_rotated")
    return face


def analyze_portrait(rgb: np.ndarray, size: int = 512) -> Portrait:
    """Find the one face, crop a head-and-shoulders square around it, resize to `size`, re-measure."""
    face = _check_face(find_faces(rgb))
    h, w = rgb.shape[:2]
    x0, y0 = face[:, :2].min(axis=0)
    x1, y1 = face[:, :2].max(axis=0)
    face_h = y1 - y0
    side = min(CROP_FACE_HEIGHTS * face_h, w, h)
    cx = (x0 + x1) / 2
    cy = (y0 + y1) / 2 + 0.12 * face_h  # a little lower than the face centre: shoulders over sky
    left = int(round(np.clip(cx - side / 2, 0, w - side)))
    top = int(round(np.clip(cy - side / 2, 0, h - side)))
    side_px = int(round(side))
    crop = rgb[top:top + side_px, left:left + side_px]
    interp = cv2.INTER_AREA if side_px > size else cv2.INTER_LANCZOS4
    square = cv2.resize(crop, (size, size), interpolation=interp)
    refined = detect_faces(square)
    if refined:
        points = refined[0]
    else:  # the crop lost the detection (rare): carry the first measurement over
        points = face.copy()
        points[:, 0] -= left
        points[:, 1] -= top
        points *= size / side_px
    return Portrait(image=np.ascontiguousarray(square[:, :, ::-1]), landmarks=points.astype(np.float32))


def load_portrait(source: str | Path | bytes, size: int = 512, mouth_rest: str = "closed") -> Portrait:
    """Decode and analyse a photo. `mouth_rest="closed"` (the default) closes parted lips for the rest
    pose (rest_mouth.py); "photo" keeps the photo's own expression."""
    from avatar_rt.avatar.rest_mouth import MOUTH_RESTS, close_rest_mouth

    if mouth_rest not in MOUTH_RESTS:
        raise ValueError(f"mouth_rest must be one of {MOUTH_RESTS}, got {mouth_rest!r}")
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    portrait = analyze_portrait(decode_image(data), size=size)
    return close_rest_mouth(portrait) if mouth_rest == "closed" else portrait
