"""The mouth interior, shown inside the deformed inner-lip contour.

Where the photo's own mouth was open (a smile with teeth; kept in
`Portrait.photo` when rest_mouth.py closed it for the rest pose), those pixels
are the teeth: the part above the gap between the rows rides with the skull,
the part below with the jaw. Everything else is the synthesized interior of
mouth_synth.py — the back of the mouth and the palate with the skull, tongue
and lower teeth with the jaw, the upper teeth (for a photo without teeth of its
own) in front — over a cavity that darkens with depth, shaded into the corners
and under the upper lip, softened to the photo's sharpness and given its grain.
With the photo's own expression kept (mouth_rest="photo"), lips of an open
reference pressed shut meet at a seam of lip colour instead of squeezing its
teeth into a sliver. At rest the contour equals the reference's, so the frame
is the reference unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm
from avatar_rt.render.mouth_donor import donor_teeth
from avatar_rt.render.mouth_synth import InteriorParts, over, similarity

DRAWN_TEETH = ("procedural", "donor")  # for a photo without teeth of its own: mouth_synth.py or mouth_donor.py
SEAM_DARKNESS = 0.45  # the line where pressed lips meet, as a share of the lip colour
SEAM_FROM = 0.5  # the seam fades in over the second half of the closure (0 = rest gap, 1 = shut)
# The shadow the upper lip casts just under itself, as a share of the light. Lighter over drawn teeth: with 0.22
# (and their old colour) they rendered at 0.69 of the photo's white level, where a photo's own teeth render at
# 0.97-1.0, and a dark, soft photo's interior fell under benchmarks/mouth_quality.py's texture floor.
LIP_SHADOW = 0.22
LIP_SHADOW_DRAWN_TEETH = 0.12


class MouthInterior:
    def __init__(self, reference: np.ndarray, rest: np.ndarray, iod: float, photo: np.ndarray | None = None,
                 photo_rest: np.ndarray | None = None, drawn_teeth: str = "procedural"):
        """`photo`/`photo_rest`: the photo before its parted lips were closed (rest_mouth.py), whose own
        teeth the opening mouth shows; None when the reference is the photo as it was. `drawn_teeth`: for a
        photo that shows none, "procedural" (mouth_synth.py) or "donor" (mouth_donor.py)."""
        if drawn_teeth not in DRAWN_TEETH:
            raise ValueError(f"drawn_teeth must be one of {DRAWN_TEETH}, got {drawn_teeth!r}")
        self.reference = reference
        self.iod = iod
        self.size = reference.shape[0]
        self._upper = np.array(lm.LIPS_INNER_UPPER)
        rest_poly = lm.inner_mouth_polygon(rest)
        self._rest_poly = rest_poly
        self._rest_area = float(cv2.contourArea(rest_poly.astype(np.float32)))
        teeth_image = reference if photo is None else photo
        teeth_rest = rest if photo_rest is None else photo_rest[:, :2].astype(np.float32)
        if drawn_teeth == "donor" and not self._shows_teeth(teeth_rest):
            teeth_image, teeth_rest = donor_teeth(reference, rest)
        # An open mouth in the photo (a smile with teeth) splits where the upper
        # teeth end: above rides with the skull, below with the jaw.
        src_poly = lm.inner_mouth_polygon(teeth_rest)
        mask = np.zeros(reference.shape[:2], dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(src_poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        ys = np.arange(reference.shape[0], dtype=np.float32)[:, None]
        xs = np.arange(reference.shape[1], dtype=np.float32)
        up, low = teeth_rest[list(lm.LIPS_INNER_UPPER)], teeth_rest[list(lm.LIPS_INNER_LOWER)]
        top = np.interp(xs, up[:, 0], up[:, 1])
        bottom = np.interp(xs, low[:, 0], low[:, 1])
        split = top + self._teeth_edge(teeth_image, up, low) * (bottom - top)
        upper_half = ys < split[None, :]
        self._teeth_image = teeth_image
        # Feathered a pixel: the photo's teeth fade into the synthesized cavity instead of ending on a cut.
        self._rest_masks = tuple(cv2.GaussianBlur(m, (0, 0), 1.0) for m in (
            np.where(upper_half, mask, 0).astype(np.uint8), np.where(upper_half, 0, mask).astype(np.uint8)))
        self._soften = max(0.5, 0.008 * iod)  # px: about what a camera and a resize leave at this face size
        # Where the photo's own teeth sit at rest: the upper set with the skull (the rest upper lip), the
        # lower set where the photo's lower lip was (closing the lips moved the jaw, and them, up).
        self._teeth_anchor = (rest[list(lm.LIPS_INNER_UPPER[1:-1])], teeth_rest[list(lm.LIPS_INNER_LOWER[1:-1])])
        self._lower = np.array(lm.LIPS_INNER_LOWER)
        self._synth_teeth = not self._shows_teeth(teeth_rest)
        self._parts = InteriorParts(reference, rest, iod, teeth=self._synth_teeth)
        self._edges_rest = (rest[list(lm.LIPS_INNER_UPPER[1:-1])].astype(np.float64),
                            rest[list(lm.LIPS_INNER_LOWER[1:-1])].astype(np.float64))
        self._margin = int(np.ceil(0.1 * iod)) + 2
        # The interior shows only as far as the lips have parted beyond rest: spreading, shifting or pressing
        # closed lips must not paint a cavity sliver along the lip line (it also misleads face trackers).
        self._rest_gaps = self._gaps(rest)
        self._open_span = 0.04 * iod
        # Only a reference whose lips are apart at rest has a gap to close; its lip colour fills the seam.
        self._rest_gap_mean = float(np.mean(self._rest_gaps[1:-1]))
        self._can_close = self._rest_gap_mean > 0.03 * iod
        self._lip_bgr = self._lower_lip_colour(reference, rest) if self._can_close else None

    @staticmethod
    def _shows_teeth(points: np.ndarray) -> bool:
        """Whether lips at `points` are open enough to show teeth: an inner-lip area of 4 % of the mouth width²."""
        mouth_w = float(np.linalg.norm(points[lm.MOUTH_CORNERS[1]] - points[lm.MOUTH_CORNERS[0]]))
        return float(cv2.contourArea(lm.inner_mouth_polygon(points).astype(np.float32))) >= 0.04 * mouth_w**2

    @staticmethod
    def _gaps(points: np.ndarray) -> np.ndarray:
        """Vertical inner-lip gaps, corner to corner (upper and lower contours are listed in the same order)."""
        return points[list(lm.LIPS_INNER_LOWER), 1] - points[list(lm.LIPS_INNER_UPPER), 1]

    @staticmethod
    def _teeth_edge(reference: np.ndarray, up: np.ndarray, low: np.ndarray) -> float:
        """Where, from the upper inner lip (0) to the lower (1), the upper teeth end.

        The gap between the rows is the darkest line across the open mouth; with
        no clear gap (a smile showing only upper teeth) almost all of it is upper.
        """
        gray = cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY).astype(np.float32)
        x_lo, x_hi = up[0, 0], up[-1, 0]
        xs = np.linspace(x_lo + 0.2 * (x_hi - x_lo), x_hi - 0.2 * (x_hi - x_lo), 12)
        ts = np.linspace(0.0, 1.0, 21)
        top = np.interp(xs, up[:, 0], up[:, 1])
        bottom = np.interp(xs, low[:, 0], low[:, 1])
        if float(np.mean(bottom - top)) < 3.0:
            return 0.5
        sample_y = top[None, :] + ts[:, None] * (bottom - top)[None, :]
        profile = cv2.remap(gray, np.broadcast_to(xs, sample_y.shape).astype(np.float32),
                            sample_y.astype(np.float32), cv2.INTER_LINEAR).mean(axis=1)
        window = (ts >= 0.3) & (ts <= 0.95)
        t_dark = float(ts[window][np.argmin(profile[window])])
        return t_dark if profile[window].min() < 0.75 * profile.max() else 0.9

    @staticmethod
    def _lower_lip_colour(reference: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """Median colour of the band between the outer and inner lower lip (the visible lower lip)."""
        band = np.concatenate([rest[list(lm.LIPS_OUTER_LOWER)], rest[list(lm.LIPS_INNER_LOWER)][::-1]])
        mask = np.zeros(reference.shape[:2], dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(band).astype(np.int32)], 255)
        return np.median(reference[mask > 0], axis=0).astype(np.float32)  # lips apart at rest: never empty

    def _close_seam(self, frame: np.ndarray, points: np.ndarray, poly: np.ndarray, gaps: np.ndarray) -> None:
        """Lips pressed together over the reference's open mouth: paint what is left of the gap in lip
        colour with a darker seam along its middle. Warping alone squeezes the teeth into a bright sliver
        between the lips, which reads (to people and to face trackers) as a mouth still ajar."""
        closure = 1.0 - float(np.mean(np.maximum(gaps[1:-1], 0.0))) / self._rest_gap_mean
        k = float(np.clip((closure - SEAM_FROM) / (1.0 - SEAM_FROM), 0.0, 1.0))
        k = k * k * (3 - 2 * k)
        if k <= 0.0:
            return
        x0, y0 = np.floor(poly.min(axis=0)).astype(int) - 4
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 5
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(self.size, x1), min(self.size, y1)
        if x1 <= x0 or y1 <= y0:
            return
        origin = np.array([x0, y0])
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round((poly - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))  # cover the teeth's edge pixels too
        alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] * (k / 255.0)
        region = frame[y0:y1, x0:x1]
        fill = np.empty(region.shape, dtype=np.float32)
        fill[:] = self._lip_bgr
        middle = 0.5 * (points[list(lm.LIPS_INNER_UPPER)] + points[list(lm.LIPS_INNER_LOWER)]) - origin
        cv2.polylines(fill, [np.round(middle * 16).astype(np.int32)], False, (SEAM_DARKNESS * self._lip_bgr).tolist(),
                      2, cv2.LINE_AA, shift=4)
        fill = cv2.GaussianBlur(fill, (3, 3), 0)
        region[:] = (alpha * fill + (1 - alpha) * region).astype(np.uint8)

    def composite(self, frame: np.ndarray, points: np.ndarray, upper_teeth: np.ndarray, lower_teeth: np.ndarray,
                  teeth_show: float = 0.0) -> None:
        """`upper_teeth` ride with the skull and `lower_teeth` with the jaw (from the rig), not with the lips.
        (`teeth_show` parts the lips in the rig; the teeth themselves need nothing more from it.)"""
        poly = lm.inner_mouth_polygon(points)
        area = float(cv2.contourArea(poly.astype(np.float32)))
        if area <= self._rest_area + 1.0 and np.allclose(poly, self._rest_poly, atol=0.25):
            return
        gaps = self._gaps(points)
        if self._can_close:
            self._close_seam(frame, points, poly, gaps)
        parted = float(np.max(gaps - self._rest_gaps)) / self._open_span
        show = float(np.clip(parted, 0.0, 1.0) ** 2 * (3 - 2 * np.clip(parted, 0.0, 1.0)))  # smoothstep
        if show <= 0.0:
            return
        x0, y0 = np.floor(poly.min(axis=0)).astype(int) - self._margin
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + self._margin
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(self.size, x1), min(self.size, y1)
        if x1 <= x0 or y1 <= y0:
            return
        h, w = y1 - y0, x1 - x0
        local = (poly - np.array([x0, y0])) * 16
        mask = np.zeros((h, w), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(local).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] * (show / 255.0)

        interior = self._interior(points, float(np.max(gaps)), upper_teeth, lower_teeth, mask, x0, y0, w, h)
        region = frame[y0:y1, x0:x1]
        region[:] = np.clip(alpha * interior + (1 - alpha) * region, 0, 255).astype(np.uint8)

    def _interior(self, points: np.ndarray, opening: float, upper_teeth: np.ndarray, lower_teeth: np.ndarray,
                  mask: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """The mouth's inside over the ROI (h, w, 3) float32: cavity, tongue, teeth, shading. `opening`: the
        widest inner-lip gap of this frame (px), which `composite` has already measured."""
        parts = self._parts
        origin = np.array([x0, y0], np.float64)
        # Cavity: darker at the top (the palate's shadow) and the further from the lips (depth).
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        depth = cv2.GaussianBlur(mask.astype(np.float32) * (1.0 / 255.0), (0, 0), max(1.0, 0.3 * opening))
        interior = (parts.cavity_top + (t * (1.0 - 0.45 * depth))[..., None] * (parts.cavity_bottom - parts.cavity_top)
                    ).astype(np.float32) * (1.0 - 0.45 * depth)[..., None]
        maps = {"upper": similarity(self._edges_rest[0], upper_teeth.astype(np.float64)),
                "lower": similarity(self._edges_rest[1], lower_teeth.astype(np.float64))}
        for group, bgra, layer_origin in parts.layers:
            over(interior, bgra, layer_origin, maps[group], origin)
        # Into shadow towards the corners and just under the upper lip; the drawn parts with depth too.
        xs = np.arange(x0, x0 + w, dtype=np.float32)
        centre = 0.5 * (points[lm.MOUTH_CORNERS[0], 0] + points[lm.MOUTH_CORNERS[1], 0])
        half = max(1.0, 0.5 * abs(points[lm.MOUTH_CORNERS[1], 0] - points[lm.MOUTH_CORNERS[0], 0]))
        corner = 1.0 - 0.55 * np.clip(np.abs(xs - centre) / half, 0, 1) ** 3
        up = points[list(lm.LIPS_INNER_UPPER)]
        top = np.interp(xs, up[:, 0], up[:, 1]).astype(np.float32) - y0
        below = np.arange(h, dtype=np.float32)[:, None] - top[None, :]
        lip_shadow = LIP_SHADOW_DRAWN_TEETH if self._synth_teeth else LIP_SHADOW
        shade = corner[None, :] * (1.0 - lip_shadow * np.exp(-np.clip(below, 0, None) / max(1.0, 0.025 * self.iod)))
        if self._synth_teeth:
            interior *= (shade * (1.0 - 0.25 * depth))[..., None]
        else:
            interior *= (1.0 - 0.25 * depth)[..., None]
            # The photo's own open-mouth pixels: the upper part with the skull, the lower with the jaw.
            for teeth, anchor, rest_mask in zip((upper_teeth, lower_teeth), self._teeth_anchor, self._rest_masks):
                shift = (teeth - anchor).mean(axis=0)
                m = np.float32([[1, 0, shift[0] - x0], [0, 1, shift[1] - y0]])
                ref_patch = cv2.warpAffine(self._teeth_image, m, (w, h), flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
                ref_alpha = cv2.warpAffine(rest_mask, m, (w, h), flags=cv2.INTER_LINEAR)
                ref_alpha = ref_alpha.astype(np.float32)[..., None] * (1.0 / 255.0)
                interior += ref_alpha * (ref_patch - interior)
            interior *= shade[..., None]
        # As soft as the photo around it, then its grain (drawn edges are sharper and cleaner than a camera's:
        # benchmarks/mouth_quality.py measured 2-3x the gradient energy of the photo's own teeth without this).
        interior = cv2.GaussianBlur(interior, (0, 0), self._soften)
        n = parts.cavity_noise
        if n.shape[0] >= h and n.shape[1] >= w:
            ny, nx = y0 % (n.shape[0] - h + 1), x0 % (n.shape[1] - w + 1)
            interior += n[ny:ny + h, nx:nx + w, None]
        return interior
