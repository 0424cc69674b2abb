"""Rest-mouth normalisation ("lip zero"): a photo with parted lips gets a closed-lips rest.

The rig animates from the photo's own landmarks, so whatever the mouth does in
the photo is the rest pose: a smile with parted lips stays parted in silence
and presses shut only by squeezing its teeth into a sliver. So, once per
portrait (as LivePortrait zeroes the source's lips before animating), parted
lips are closed:

1. the mouth interior (teeth, the dark gap) is replaced by lip texture, each
   half continued from its own lip by reflection across the inner lip edge, so
   no tooth pixel is left to leak between the lips;
2. the lips are moved together by an exact piecewise-affine warp of the face mesh: the upper
   lip comes down a third of the gap and the lower lip (carried by the jaw,
   which does most of a real closure) up the rest, the skin around them
   following with a falloff, the mouth corners held;
3. a soft contact line, darker towards the corners, is drawn where they meet.

The portrait keeps the photo as it was (`Portrait.photo`), so a mouth that
opens shows the photo's own teeth when it had any. `mouth_rest="photo"` (a
per-avatar setting) keeps the photo's own expression instead.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from avatar_rt.avatar import landmarks as lm
from avatar_rt.avatar.reference import Portrait

# Mean inner-lip gap (IOD) above which the photo's lips count as parted. MediaPipe reads closed lips at
# ≤ 0.01 (tests/data/portraits: 0.000 and 0.001); the parted ones read 0.12–0.28.
PARTED_GAP_IOD = 0.03
UPPER_SHARE = 0.35  # of the gap closed by the upper lip; the lower lip, carried by the jaw, closes the rest
UPPER_OUTER_FOLLOW = 0.4  # share of the upper lip's closing move its outer edge makes
UPPER_RADIUS_IOD = 0.3  # how far around the upper lip the skin follows it
LOWER_RADIUS_IOD = 0.7  # … and around the lower lip (the chin comes up with the jaw)
REFLECT_PX = 3.0
EDGE_MARGIN_PX = 1.0
CONTACT_PX = 1.5  # half-height of the band re-blended along the contact line
EDGE_PX = 1.5  # the reflection line sits this far inside each lip: the edge pixels are half tooth
MAX_EDGE_IOD = 0.05  # the lip's true inner edge is looked for this far beyond MediaPipe's contour
SEAM_DARKNESS = 0.5  # the contact line's darkest share of the lip colour (at the corners)
MET_GAP_PX = 0.3  # the closed lips' inner contours, this far apart
MOUTH_RESTS = ("closed", "photo")


def inner_gaps(points: np.ndarray) -> np.ndarray:
    """Vertical inner-lip gaps (pixels) at the 9 interior pairs of the inner contour, corner to corner."""
    return (points[list(lm.LIPS_INNER_LOWER[1:-1]), 1] - points[list(lm.LIPS_INNER_UPPER[1:-1]), 1]).astype(np.float64)


def is_parted(points: np.ndarray) -> bool:
    return float(np.mean(inner_gaps(points))) > PARTED_GAP_IOD * lm.inter_ocular(points)


def _spread(points: np.ndarray, handles: np.ndarray, disp: np.ndarray, radius: float,
            pinned: np.ndarray) -> np.ndarray:
    from avatar_rt.rig.basis import spread

    pts3 = np.zeros((len(points), 3))
    pts3[:, :2] = points
    d3 = np.zeros((len(handles), 3))
    d3[:, :2] = disp
    return spread(pts3, handles, d3, radius, pinned)[:, :2]


def closed_landmarks(points: np.ndarray) -> np.ndarray:
    """The landmarks with the inner lips meeting along a line a third of the way down the gap."""
    iod = lm.inter_ocular(points)
    xy = points[:, :2].astype(np.float64)
    up_in, low_in = list(lm.LIPS_INNER_UPPER[1:-1]), list(lm.LIPS_INNER_LOWER[1:-1])
    up_out, low_out = list(lm.LIPS_OUTER_UPPER[1:-1]), list(lm.LIPS_OUTER_LOWER[1:-1])
    gap = xy[low_in] - xy[up_in]
    meet = xy[up_in] + UPPER_SHARE * gap
    d_up = meet - xy[up_in]
    d_low = meet - xy[low_in]
    corners = np.array(lm.MOUTH_CORNERS + (lm.LIPS_INNER_UPPER[0], lm.LIPS_INNER_UPPER[-1]))
    upper = np.array(up_in + up_out)
    lower = np.array(low_in + low_out)
    face = xy[: lm.NUM_FACE_LANDMARKS]
    move = np.zeros_like(xy)
    # The upper lip relaxes as it comes down: its inner edge goes all the way, its outer edge part of it, so
    # a lip stretched thin by a smile fills out again (kept as thin, it was a line a pixel or two thick that
    # the per-frame warp could not move cleanly).
    move[: lm.NUM_FACE_LANDMARKS] += _spread(face, upper, np.concatenate([d_up, UPPER_OUTER_FOLLOW * d_up]),
                                             UPPER_RADIUS_IOD * iod,
                                             np.concatenate([lower, corners]))
    move[: lm.NUM_FACE_LANDMARKS] += _spread(face, lower, np.concatenate([d_low, d_low]), LOWER_RADIUS_IOD * iod,
                                             np.concatenate([upper, corners]))
    out = points.astype(np.float32).copy()
    out[:, :2] += move.astype(np.float32)
    # Met, a hair apart: the warp's mesh is a Delaunay triangulation of the landmarks, which keeps one of two
    # coincident points, and the jaw must still move the lower lip's own inner edge (closed photos read
    # 0.001 IOD apart in MediaPipe, too).
    out[low_in, :2] = out[up_in, :2] + np.array([0.0, MET_GAP_PX], np.float32)
    if out.shape[1] > 2:  # met in depth as well: the rig presses lips together in 3D
        out[low_in, 2] = out[up_in, 2]
    return out


def _contour_y(points: np.ndarray, ids: tuple[int, ...], xs: np.ndarray) -> np.ndarray:
    c = points[list(ids), :2]
    order = np.argsort(c[:, 0])
    return np.interp(xs, c[order, 0], c[order, 1])


def _lip_lab(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Median Lab colour of the lips (the band between the outer and inner contours, both lips)."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for outer, inner in ((lm.LIPS_OUTER_UPPER, lm.LIPS_INNER_UPPER), (lm.LIPS_OUTER_LOWER, lm.LIPS_INNER_LOWER)):
        band = np.concatenate([points[list(outer), :2], points[list(inner), :2][::-1]])
        cv2.fillPoly(mask, [np.round(band).astype(np.int32)], 255)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    sel = lab[mask > 0]
    return np.median(sel, axis=0) if len(sel) else lab.reshape(-1, 3).mean(axis=0)


def lip_edges(image: np.ndarray, points: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inner edges of the upper and lower lip at columns `xs`, found in the pixels.

    MediaPipe's inner contour often lies a pixel or three on the teeth of a smile; the pixels from it
    outwards that are not lip (teeth: brighter and paler; the cavity: much darker) are walked over, at
    most MAX_EDGE_IOD, so that no tooth is left to show between the closed lips.
    """
    iod = lm.inter_ocular(points)
    lip = _lip_lab(image, points)
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB).astype(np.float32)
    h, w = image.shape[:2]
    not_lip = ((lab[..., 0] > lip[0] + 18) & (np.abs(lab[..., 1] - 128) < 0.6 * abs(lip[1] - 128) + 2)) \
        | (lab[..., 0] < lip[0] - 35)
    up = _contour_y(points, lm.LIPS_INNER_UPPER, xs)
    low = _contour_y(points, lm.LIPS_INNER_LOWER, xs)
    steps = int(np.ceil(MAX_EDGE_IOD * iod))
    cols = np.clip(np.round(xs).astype(int), 0, w - 1)
    for sign, edge in ((-1, up), (1, low)):
        start = edge.copy()
        walking = np.ones(len(xs), bool)
        for k in range(steps + 1):
            rows = np.clip(np.round(start + sign * k).astype(int), 0, h - 1)
            walking &= not_lip[rows, cols]
            edge += sign * walking
    # Column by column the walk is noisy (a highlight, a gap between teeth): the edge is a smooth curve.
    k = max(3, int(0.08 * iod) | 1)
    up = uniform_filter1d(median_filter(up, size=k, mode="nearest"), size=k // 2 + 1, mode="nearest")
    low = uniform_filter1d(median_filter(low, size=k, mode="nearest"), size=k // 2 + 1, mode="nearest")
    return up, low


def move_inner_lips(points: np.ndarray, xs: np.ndarray, upper_y: np.ndarray, lower_y: np.ndarray) -> np.ndarray:
    """The landmarks with the inner-lip contours moved to the curves (xs, upper_y) and (xs, lower_y); the
    points inside each lip keep their place across its thickness, so none is left in the opening (where
    closing it would fold the mesh) or on the other lip's side of the line."""
    out = points.copy()
    bodies = lm.lip_bodies(points)
    for ids, edge, outer, inner, body in ((lm.LIPS_INNER_UPPER[1:-1], upper_y, lm.LIPS_OUTER_UPPER,
                                           lm.LIPS_INNER_UPPER, bodies[0]),
                                          (lm.LIPS_INNER_LOWER[1:-1], lower_y, lm.LIPS_OUTER_LOWER,
                                           lm.LIPS_INNER_LOWER, bodies[1])):
        bx = points[body, 0].astype(np.float64)
        y_out = _contour_y(points, outer, bx)
        y_in = _contour_y(points, inner, bx)
        f = np.clip((points[body, 1] - y_out) / np.where(np.abs(y_in - y_out) < 1e-6, 1e-6, y_in - y_out), 0, 1)
        out[list(ids), 1] = np.interp(points[list(ids), 0], xs, edge)
        y_new = _contour_y(out, inner, bx)
        out[body, 1] = y_out + f * (y_new - y_out)
    return out


def snap_inner_lips(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The landmarks with the inner-lip points moved onto the lips' true inner edges (see lip_edges)."""
    xs_all = points[list(lm.LIPS_INNER_UPPER), 0]
    xs = np.arange(np.floor(xs_all.min()), np.ceil(xs_all.max()) + 1, dtype=np.float64)
    up_edge, low_edge = lip_edges(image, points, xs)
    # A pixel further into each lip: the edge pixels themselves are part tooth or shadow, and the closure
    # puts them side by side on the contact line, where they showed as light and dark specks.
    return move_inner_lips(points, xs, up_edge - EDGE_MARGIN_PX, low_edge + EDGE_MARGIN_PX)


def fill_interior(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The open mouth's interior replaced by lip texture: above the meeting line the upper lip reflected
    downwards across its inner edge, below it the lower lip reflected upwards."""
    out = image.copy()
    xs_all = points[list(lm.LIPS_INNER_UPPER), 0]
    x0, x1 = int(np.floor(xs_all.min())) - 1, int(np.ceil(xs_all.max())) + 2
    up = _contour_y(points, lm.LIPS_INNER_UPPER, np.arange(x0, x1, dtype=np.float64))
    low = _contour_y(points, lm.LIPS_INNER_LOWER, np.arange(x0, x1, dtype=np.float64))
    y0 = int(np.floor(up.min() - 2 * EDGE_PX)) - 1
    y1 = int(np.ceil(low.max() + 2 * EDGE_PX)) + 2
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    xs = np.arange(x0, x1, dtype=np.float64)
    up = _contour_y(points, lm.LIPS_INNER_UPPER, xs)[None, :]
    low = _contour_y(points, lm.LIPS_INNER_LOWER, xs)[None, :]
    meet = up + UPPER_SHARE * (low - up)
    top_edge, bottom_edge = up - EDGE_PX, low + EDGE_PX
    # Mirrored no further than REFLECT_PX into each lip: a thin lip mirrored further brings the skin beyond it.
    src_y = np.where(ys < meet, top_edge - np.minimum(ys - top_edge, REFLECT_PX),
                     bottom_edge + np.minimum(bottom_edge - ys, REFLECT_PX))
    src_x = np.broadcast_to(xs[None, :], src_y.shape)
    filled = cv2.remap(image, src_x.astype(np.float32), src_y.astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    # Inside the (slightly grown) opening: the fill; a pixel of soft edge either side.
    inside = np.minimum(ys - top_edge, bottom_edge - ys)
    alpha = np.clip(inside + 1.0, 0.0, 1.0)[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(alpha * filled + (1 - alpha) * region, 0, 255).astype(np.uint8)
    return out


def _blend_contact(image: np.ndarray, points: np.ndarray) -> None:
    """The pixels on the line where the lips now meet, replaced by a vertical blend of the lip just above
    and just below it: whatever was left there (a tooth's edge, a speck of shadow) reads as a fleck."""
    line = points[list(lm.LIPS_INNER_UPPER), :2].astype(np.float64)
    x0, x1 = int(np.ceil(line[:, 0].min())), int(np.floor(line[:, 0].max())) + 1
    if x1 - x0 < 2:
        return
    xs = np.arange(x0, x1, dtype=np.float64)
    y_mid = _contour_y(points, lm.LIPS_INNER_UPPER, xs) + 0.5 * MET_GAP_PX
    ys = np.arange(int(np.floor(y_mid.min() - CONTACT_PX)), int(np.ceil(y_mid.max() + CONTACT_PX)) + 1)
    h, w = image.shape[:2]
    ys = ys[(ys >= 0) & (ys < h)]
    if len(ys) == 0:
        return
    img = image.astype(np.float32)
    above = cv2.remap(img, xs[None, :].astype(np.float32), (y_mid - CONTACT_PX - 1)[None, :].astype(np.float32),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
    below = cv2.remap(img, xs[None, :].astype(np.float32), (y_mid + CONTACT_PX + 1)[None, :].astype(np.float32),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
    d = (ys[:, None] - y_mid[None, :]) / (CONTACT_PX + 1)  # -1 … 1 across the band
    t = np.clip(0.5 + 0.5 * d, 0, 1)[..., None]
    blend = (1 - t) * above[None] + t * below[None]
    weight = np.clip(1.5 - np.abs(d) * 1.5, 0, 1)[..., None]  # full on the line, fading out at the band's edge
    region = img[ys[0]:ys[-1] + 1, x0:x1]
    image[ys[0]:ys[-1] + 1, x0:x1] = np.clip(weight * blend + (1 - weight) * region, 0, 255).astype(np.uint8)


def _draw_seam(image: np.ndarray, points: np.ndarray, iod: float) -> None:
    """A soft darker line where the closed lips meet, darkest at the corners (lips part into shadow there)."""
    line = points[list(lm.LIPS_INNER_UPPER), :2].astype(np.float64)
    x0, y0 = np.floor(line.min(axis=0)).astype(int) - 4
    x1, y1 = np.ceil(line.max(axis=0)).astype(int) + 5
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    width = max(1, int(round(0.012 * iod)))
    cv2.polylines(mask, [np.round((line - [x0, y0]) * 16).astype(np.int32)], False, 1.0, width, cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, 0.006 * iod))
    mask /= max(1e-6, float(mask.max()))
    xs = np.arange(x0, x1, dtype=np.float64)
    centre, half = (line[0, 0] + line[-1, 0]) / 2, max(1.0, (line[-1, 0] - line[0, 0]) / 2)
    towards_corner = np.clip(np.abs(xs - centre) / half, 0.0, 1.0) ** 2
    depth = (1 - SEAM_DARKNESS) * (0.5 + 0.5 * towards_corner)
    shade = 1.0 - mask * depth[None, :].astype(np.float32)
    region = image[y0:y1, x0:x1].astype(np.float32)
    image[y0:y1, x0:x1] = np.clip(region * shade[..., None], 0, 255).astype(np.uint8)


def mesh_warp(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`image` warped so that landmarks at `source` move to `target`, exactly: each triangle of the face
    mesh (the renderer's, with its still anchors around the face) maps affinely onto its moved self.

    The renderer's per-frame map inverts its field with one fixed-point step, which is right for the small
    motions of speech but smears a closure of 0.2 IOD over lips a few pixels thick (the lips came out
    doubled); this runs once per portrait, so it can afford the exact inverse.
    """
    from avatar_rt.render.warp import LocalField

    field = LocalField(source[:, :2].astype(np.float32), image.shape[0])
    src_v = field.vertices.astype(np.float64)
    dst_v = src_v.copy()
    dst_v[: field.num_moving] = target[: field.num_moving, :2]
    moved = np.abs(dst_v - src_v).max(axis=1) > 1e-3
    tris = field.triangles[moved[field.triangles].any(axis=1)]
    corners = dst_v[tris.reshape(-1)]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    ids = np.full((y1 - y0, x1 - x0), -1, np.int32)
    for t, tri in enumerate(tris):
        if abs(np.cross(dst_v[tri[1]] - dst_v[tri[0]], dst_v[tri[2]] - dst_v[tri[0]])) < 1e-6:
            continue  # collapsed (the closed opening): nothing of it shows
        cv2.fillConvexPoly(ids, np.round((dst_v[tri] - [x0, y0]) * 16).astype(np.int32), int(t), cv2.LINE_8, shift=4)
    # Pixels on the collapsed line (between two triangles' rasterised edges) take a neighbour's triangle:
    # left alone they would show whatever the photo had there.
    for shift in (1, -1, 1, -1):
        holes = ids < 0
        if not holes.any():
            break
        neighbour = np.roll(ids, shift, axis=0)
        ids = np.where(holes & (neighbour >= 0), neighbour, ids)
    affines = np.zeros((len(tris), 2, 3))
    for t, tri in enumerate(tris):
        a = np.hstack([dst_v[tri], np.ones((3, 1))])
        if abs(np.linalg.det(a)) > 1e-9:
            affines[t] = np.linalg.solve(a, src_v[tri]).T
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    inside = ids >= 0
    m = affines[np.where(inside, ids, 0)]
    map_x = np.where(inside, m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2], xs).astype(np.float32)
    map_y = np.where(inside, m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2], ys).astype(np.float32)
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def close_rest_mouth(portrait: Portrait) -> Portrait:
    """The portrait with its parted lips closed (unchanged when they already meet); the photo is kept."""
    if portrait.photo is not None or not is_parted(portrait.landmarks):
        return portrait
    iod = portrait.inter_ocular
    points = snap_inner_lips(portrait.image, portrait.landmarks)
    target = closed_landmarks(points)
    image = mesh_warp(fill_interior(portrait.image, points), points, target)
    _blend_contact(image, target)
    _draw_seam(image, target, iod)
    return dataclasses.replace(portrait, image=image, landmarks=_measure(image, target), photo=portrait.image,
                               photo_landmarks=portrait.landmarks)


def _measure(image: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The closed portrait's landmarks as MediaPipe reads them, like any reference's (the warp's targets sat
    2 % IOD from that on the lips, and the rig's rest should be what a face tracker sees), except the inner
    lips: those are put on the contact line drawn in the image, where an opening mouth must part (MediaPipe
    reads closed inner lips a pixel or two off it, crossing here and there, which tore the line into a
    ragged edge as the jaw opened). The targets stand in if the face is not found again."""
    from avatar_rt.avatar.reference import detect_faces

    faces = detect_faces(np.ascontiguousarray(image[:, :, ::-1]))
    if not faces:
        return target
    nose = target[lm.NOSE_TIP, :2]
    found = min(faces, key=lambda f: float(np.linalg.norm(f[lm.NOSE_TIP, :2] - nose)))
    if np.abs(found[:, :2] - target[:, :2]).max() > 0.25 * lm.inter_ocular(target):
        return target
    line = target[list(lm.LIPS_INNER_UPPER), :2].astype(np.float64)
    xs = np.arange(np.floor(line[:, 0].min()) - 2, np.ceil(line[:, 0].max()) + 3, dtype=np.float64)
    seam = np.interp(xs, line[:, 0], line[:, 1])
    out = move_inner_lips(found.astype(np.float32), xs, seam, seam + MET_GAP_PX)
    out[list(lm.LIPS_INNER_LOWER[1:-1]), 2] = out[list(lm.LIPS_INNER_UPPER[1:-1]), 2]
    return out
