"""Reference analysis: once per avatar, turn a photo into the square portrait the engine animates.

Decoding is guarded (size is read from the header before any pixel is decoded),
the face is found with MediaPipe Face Mesh (478 landmarks), the photo is cropped
to a head-and-shoulders square around it and resized, and the landmarks are
measured again on that crop so everything downstream works in output pixels.
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
# Nose-tip offset from the eye midline, in inter-ocular units, past which the
# face is too far turned for a frontal rig to animate believably.
MAX_FRONTAL_ASYMMETRY = 0.38
# A second face at least this fraction of the main face's size makes the choice ambiguous.
SECOND_FACE_RATIO = 0.5
# The crop is this many face heights on a side, so hair, neck and shoulders are in frame.
CROP_FACE_HEIGHTS = 2.6
DETECT_MAX_SIDE = 1280
# decode_image enforces the limits above from the header, with a message that
# names the size; Pillow's own bomb check would fire first with a vaguer one.
Image.MAX_IMAGE_PIXELS = None

DEFAULT_PORTRAIT = Path(__file__).resolve().parent.parent / "assets" / "astronaut_512.jpg"


@dataclass(frozen=True)
class Portrait:
    """A prepared reference: the square image the engine animates and its landmarks."""

    image: np.ndarray  # (size, size, 3) uint8, BGR
    landmarks: np.ndarray  # (478, 3) float32: x, y in pixels of `image`, z in the same scale

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


def _check_face(faces: list[np.ndarray]) -> np.ndarray:
    if not faces:
        raise FaceError("no face was found in the image; use a front-facing portrait with the face clearly visible",
                        code="no_face")
    face = faces[0]
    iod = lm.inter_ocular(face)
    if len(faces) > 1 and lm.inter_ocular(faces[1]) >= SECOND_FACE_RATIO * iod:
        raise FaceError(f"{len(faces)} faces were found; use a portrait with exactly one person",
                        code="multiple_faces")
    if iod < MIN_INTER_OCULAR_PX:
        raise FaceError(f"the face is too small to animate ({iod:.0f} px between the eyes, at least "
                        f"{MIN_INTER_OCULAR_PX:.0f} needed); use a closer or larger photo", code="face_too_small")
    right, left = lm.eye_centers(face)
    mid = (right + left) / 2
    asymmetry = float((face[lm.NOSE_TIP, 0] - mid[0]) / iod)
    if abs(asymmetry) > MAX_FRONTAL_ASYMMETRY:
        raise FaceError("the face is turned too far to the side; use a front-facing portrait",
                        code="face_in_profile")
    return face


def analyze_portrait(rgb: np.ndarray, size: int = 512) -> Portrait:
    """Find the one face, crop a head-and-shoulders square around it, resize to `size`, re-measure."""
    face = _check_face(detect_faces(rgb))
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


def load_portrait(source: str | Path | bytes, size: int = 512) -> Portrait:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return analyze_portrait(decode_image(data), size=size)
