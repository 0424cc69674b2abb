"""A synthesized mouth interior, built once per portrait: teeth rows, gums, tongue, cavity texture.

A photo with closed lips has no interior of its own, and one flat colour reads
as a painted slab. So the parts are drawn once, at 4× and then reduced, in the
rest frame of the portrait (image pixels at rest), as sprites the renderer
moves per frame with the skull (upper row, gums) or the jaw (lower row,
tongue):

* teeth as individual crowns along a dental arch (an arc of radius ARCH_MM
  seen from the front, so crowns narrow and darken towards the corners), with
  gaps, a rounded incisal edge, convex shading across each crown, a warmer neck
  and a slightly translucent edge; the upper row's edges sit UPPER_SHOW_MM
  below the rest lip line and the lower row's LOWER_SHOW_MM above it, so an
  opening jaw shows a band of upper teeth and the lower row mostly hidden
  behind the lower lip;
* gums above the upper row (seen when the upper lip lifts);
* a tongue behind the lower teeth, lit on top, with a median groove.

Colour comes from the photo (teeth from its exposure, gums and tongue from
the lips), and the sprites get the photo's grain, so the interior
is not cleaner or sharper than the face around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm

MM_PER_IOD = 63.0  # adult inter-pupillary distance: converts dental sizes to the portrait's scale
ARCH_MM = 25.0  # radius of the dental arch seen from the front
UPPER_WIDTHS_MM = (8.5, 6.5, 7.5, 7.0, 6.5, 10.0)  # central incisor → first molar
LOWER_WIDTHS_MM = (5.5, 6.0, 7.0, 7.0, 7.0, 11.0)
UPPER_SHOW_MM = (3.4, 2.7, 3.0, 2.2, 1.8, 1.2)  # incisal edge below the rest lip line, per tooth
LOWER_SHOW_MM = 1.2  # lower incisal edge above the rest lip line
CROWN_MM = 9.0  # crown height drawn (most of it behind the lips)
GUM_MM = 4.0  # gum above the upper crowns
GAP_MM = 0.3  # between neighbouring crowns
SUPER = 4  # supersampling of the drawing
CAVITY_GRAIN = 2.6  # grey levels
# Teeth colour as a share of the photo's white level, per BGR channel: the brightest quarter of the photos' own
# teeth measures (0.90, 0.95, 1.01) on the bundled portrait and (0.94, 0.98, 1.00) on tests/data/portraits/
# obama.jpg. (0.84, 0.92, 0.96) before, capped at 235: drawn teeth then rendered at 0.66-0.71 of the white level
# where a photo's own teeth render at 0.97-1.0, and on a dark, soft photo the interior fell under the issue's
# texture floor.
TEETH_OF_WHITE = (0.92, 0.97, 1.0)
TEETH_MAX = 250.0


@dataclass
class Sprite:
    """A layer in rest-frame pixels: `colour` (h, w, 3) float32, `alpha` (h, w) float32, with its top-left
    corner at `origin` (x, y) in the portrait. `bgra` is the same premultiplied, as the renderer resamples it
    (one warp for colour and alpha, and no dark fringe where the layer's edge is resampled)."""

    colour: np.ndarray
    alpha: np.ndarray
    origin: np.ndarray

    @property
    def bgra(self) -> np.ndarray:
        return np.dstack([self.colour * self.alpha[..., None], self.alpha]).astype(np.float32)


def stack(layers: list[Sprite]) -> Sprite:
    """Layers that move together, composited once (later ones on top) onto one canvas that holds them all."""
    x0 = min(float(s.origin[0]) for s in layers)
    y0 = min(float(s.origin[1]) for s in layers)
    x1 = max(float(s.origin[0]) + s.alpha.shape[1] for s in layers)
    y1 = max(float(s.origin[1]) + s.alpha.shape[0] for s in layers)
    h, w = int(round(y1 - y0)), int(round(x1 - x0))
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    for s in layers:
        ox, oy = int(round(s.origin[0] - x0)), int(round(s.origin[1] - y0))
        sh, sw = s.alpha.shape
        a = s.alpha[..., None]
        region_c, region_a = colour[oy:oy + sh, ox:ox + sw], alpha[oy:oy + sh, ox:ox + sw]
        # Straight alpha "over": the colour is the weighted mix of what each layer shows.
        out_a = s.alpha + region_a * (1 - s.alpha)
        mixed = (s.colour * a + region_c * (region_a * (1 - s.alpha))[..., None]) / np.maximum(out_a, 1e-6)[..., None]
        region_c[:] = mixed
        region_a[:] = out_a
    return Sprite(colour, alpha, np.array([x0, y0]))


def photo_grain(image: np.ndarray, points: np.ndarray) -> float:
    """The photo's fine-grain noise (grey levels): robust std of gray minus its blur, over the cheeks and chin."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    high = gray - cv2.GaussianBlur(gray, (0, 0), 1.0)
    mask = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(lm.FACE_OVAL), :2]).astype(np.int32)], 255)
    vals = high[mask > 0]
    if len(vals) == 0:
        return 2.0
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))))


def white_level(image: np.ndarray, points: np.ndarray) -> float:
    """The photo's exposure: the 98th percentile of the brightest channel over the face. (The whites of the
    eyes were tried first; glasses, squints and small eyes made them skin-coloured on two test portraits.)"""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(lm.FACE_OVAL), :2]).astype(np.int32)], 255)
    px = image[mask > 0].max(axis=1) if mask.any() else image.reshape(-1, 3).max(axis=1)
    return float(np.percentile(px, 98))


def lip_bgr(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    mask = np.zeros(image.shape[:2], np.uint8)
    for outer, inner in ((lm.LIPS_OUTER_UPPER, lm.LIPS_INNER_UPPER), (lm.LIPS_OUTER_LOWER, lm.LIPS_INNER_LOWER)):
        band = np.concatenate([points[list(outer), :2], points[list(inner), :2][::-1]])
        cv2.fillPoly(mask, [np.round(band).astype(np.int32)], 255)
    px = image[mask > 0]
    return np.median(px, axis=0).astype(np.float32) if len(px) else np.array([90, 90, 160], np.float32)


def _arch(widths_mm: tuple[float, ...], mm: float) -> list[tuple[float, float, float]]:
    """Crowns on one side, centre outwards: (x of inner edge, x of outer edge, arch angle), in px from the
    midline, as seen from the front."""
    out = []
    arc = 0.0
    for w in widths_mm:
        a0, a1 = arc / ARCH_MM, (arc + w) / ARCH_MM
        out.append((ARCH_MM * np.sin(min(a0, np.pi / 2)) * mm, ARCH_MM * np.sin(min(a1, np.pi / 2)) * mm,
                    0.5 * (a0 + a1)))
        arc += w
    return out


class InteriorParts:
    """The once-per-portrait sprites and colours of a synthesized interior."""

    def __init__(self, image: np.ndarray, rest: np.ndarray, iod: float, teeth: bool = True, seed: int = 0):
        """`teeth`: draw teeth (False when the photo's own are shown)."""
        self.iod = iod
        mm = iod / MM_PER_IOD
        self.mm = mm
        self.grain = float(np.clip(photo_grain(image, rest), 1.5, 4.0))
        # Teeth: ivory, about as bright as the brightest skin (a highlight) in this photo's exposure.
        self.teeth = np.clip(np.clip(white_level(image, rest), 140, 250) * np.array(TEETH_OF_WHITE, np.float32),
                             0, TEETH_MAX)
        self.lip = lip_bgr(image, rest)
        self.gum = np.clip(self.lip * np.array([0.95, 0.92, 1.12], np.float32) + 12, 0, 255)
        self.tongue = np.clip(self.lip * np.array([0.72, 0.68, 0.92], np.float32), 0, 255)
        self.cavity_top = np.clip(self.lip * 0.34, 12, 100)
        self.cavity_bottom = np.clip(self.lip * 0.6, 18, 130)
        self._rng = np.random.default_rng(seed)
        up = rest[list(lm.LIPS_INNER_UPPER), :2].astype(np.float64)
        self.centre_x = float((rest[lm.MOUTH_CORNERS[0], 0] + rest[lm.MOUTH_CORNERS[1], 0]) / 2)
        self.half_width = float(abs(rest[lm.MOUTH_CORNERS[1], 0] - rest[lm.MOUTH_CORNERS[0], 0]) / 2)
        self._up_line = up
        self.upper = self._row(upper=True)
        self.lower = self._row(upper=False)
        self.tongue_sprite = self._tongue()
        self.palate = self._palate()
        self.throat = self._throat()
        # What the renderer moves per frame, premultiplied, in three warps: the back of the mouth with the
        # skull, tongue and lower row with the jaw, the upper row with the skull in front of everything.
        back = stack([self.throat, self.palate])
        low = stack([self.tongue_sprite, self.lower] if teeth else [self.tongue_sprite])
        self.layers = [("upper", back.bgra, back.origin), ("lower", low.bgra, low.origin)]
        if teeth:
            self.layers.append(("upper", self.upper.bgra, self.upper.origin))
        size = int(np.ceil(4 * self.half_width + 8 * mm)) + 8
        # The grain over the whole interior; never below CAVITY_GRAIN (a dark cavity still shows sensor noise).
        self.cavity_noise = self._noise((size, size), max(self.grain, CAVITY_GRAIN))

    def _line_y(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self._up_line[:, 0], self._up_line[:, 1])

    def _noise(self, shape: tuple[int, int], sigma: float) -> np.ndarray:
        n = self._rng.standard_normal(shape).astype(np.float32)
        n = cv2.GaussianBlur(n, (0, 0), 0.6)  # photo grain is a little correlated (demosaicing, JPEG)
        return n * (sigma / max(1e-6, float(n.std())))

    def _finish(self, colour: np.ndarray, alpha: np.ndarray, origin: np.ndarray, grain: float) -> Sprite:
        """Reduce the 4× drawing, soften it to the photo's sharpness and give it the photo's grain."""
        h, w = alpha.shape[0] // SUPER, alpha.shape[1] // SUPER
        colour = cv2.resize(colour, (w, h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
        colour = cv2.GaussianBlur(colour, (0, 0), 0.5)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 0.5)
        colour = colour + self._noise((h, w), grain)[..., None]
        return Sprite(np.clip(colour, 0, 255).astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32), origin)

    def _canvas(self, x0: float, y0: float, x1: float, y1: float):
        origin = np.array([np.floor(x0), np.floor(y0)])
        w = int(np.ceil(x1) - origin[0]) + 1
        h = int(np.ceil(y1) - origin[1]) + 1
        return origin, np.zeros((h * SUPER, w * SUPER, 3), np.float32), np.zeros((h * SUPER, w * SUPER), np.float32)

    def _row(self, upper: bool) -> Sprite:
        mm = self.mm
        widths = UPPER_WIDTHS_MM if upper else LOWER_WIDTHS_MM
        crowns = _arch(widths, mm)
        reach = crowns[-1][1] + 2 * mm
        top_pad = (CROWN_MM + GUM_MM + 2) * mm if upper else 2 * mm
        bottom_pad = 4 * mm if upper else (CROWN_MM + 2) * mm
        ys_line = self._line_y(np.array([self.centre_x - reach, self.centre_x, self.centre_x + reach]))
        origin, colour, alpha = self._canvas(self.centre_x - reach, ys_line.min() - top_pad,
                                             self.centre_x + reach, ys_line.max() + bottom_pad)
        S = SUPER

        def px(x: float, y: float) -> tuple[float, float]:
            return (x - origin[0]) * S, (y - origin[1]) * S

        if upper:  # gums: a band above the crowns, following the lip line; the crowns' rounded tops scallop it
            xs = np.linspace(self.centre_x - reach, self.centre_x + reach, 40)
            line = self._line_y(xs)
            top = np.stack([xs, line - (CROWN_MM + GUM_MM) * mm], axis=1)
            bottom = np.stack([xs, line - (CROWN_MM - 2.5) * mm], axis=1)[::-1]
            poly = np.array([px(x, y) for x, y in np.concatenate([top, bottom])], np.float32)
            cv2.fillPoly(colour, [np.round(poly).astype(np.int32)], self.gum.tolist())
            cv2.fillPoly(alpha, [np.round(poly).astype(np.int32)], 1.0)
        for side in (-1, 1):
            for k, (inner, outer, angle) in enumerate(crowns):
                xa = self.centre_x + side * (inner + 0.5 * GAP_MM * mm)
                xb = self.centre_x + side * (outer - 0.5 * GAP_MM * mm)
                left, right = min(xa, xb), max(xa, xb)
                if right - left < 0.4:
                    continue
                mid = 0.5 * (left + right)
                line = float(self._line_y(np.array([mid]))[0])
                if upper:
                    edge = line + UPPER_SHOW_MM[k] * mm
                    y_top, y_bot = edge - CROWN_MM * mm, edge
                else:
                    edge = line - LOWER_SHOW_MM * mm * (1.0 - 0.15 * k)
                    y_top, y_bot = edge, edge + CROWN_MM * mm
                # The slot first, in shade: the gap between two crowns is a darker seam, not a hole, except
                # where their rounded edges part (the embrasures).
                slot_l = self.centre_x + side * inner
                slot_r = self.centre_x + side * outer
                self._crown(colour, alpha, origin, min(slot_l, slot_r), max(slot_l, slot_r), y_top, y_bot, upper,
                            angle, canine=(k == 2), dim=0.55)
                self._crown(colour, alpha, origin, left, right, y_top, y_bot, upper, angle, canine=(k == 2))
        return self._finish(colour, alpha, origin, 0.5 * self.grain)

    def _crown(self, colour, alpha, origin, left, right, y_top, y_bot, upper, angle, canine, dim=1.0) -> None:
        S = SUPER
        x0, x1 = int((left - origin[0]) * S), int(np.ceil((right - origin[0]) * S))
        y0, y1 = int((y_top - origin[1]) * S), int(np.ceil((y_bot - origin[1]) * S))
        h, w = y1 - y0, x1 - x0
        if h < 2 or w < 2:
            return
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u = (xx + 0.5) / w * 2 - 1  # -1..1 across the crown
        v = (yy + 0.5) / h  # 0 at the top, 1 at the bottom
        t = v if upper else 1 - v  # 0 at the neck (gum side), 1 at the incisal edge
        # Shape: a rectangle with a rounded incisal edge (pointed for the canine) and a rounded neck.
        r = 0.35 if not canine else 0.6
        edge_room = 1 - np.clip((np.abs(u) - (1 - r)) / r, 0, 1) ** 2
        tip = np.sqrt(np.clip(edge_room, 0, 1))
        edge_limit = 0.86 + 0.14 * tip if not canine else 0.8 + 0.2 * (1 - np.abs(u))
        neck_limit = 0.12 * (1 - np.sqrt(np.clip(1 - u**2, 0, 1)))
        inside = (t <= edge_limit) & (t >= neck_limit)
        a = inside.astype(np.float32)
        # Shading: convex across (darker at the sides), warmer and darker at the neck, a translucent edge,
        # and the whole crown darker the further round the arch it sits (in the mouth's shadow).
        across = 1.0 - 0.28 * u**2
        neck = 0.86 + 0.14 * np.clip(t / 0.4, 0, 1)
        arch = float(np.cos(min(angle, 1.45))) ** 1.3
        base = self.teeth[None, None, :] * (dim * across * neck * (0.35 + 0.65 * arch))[..., None]
        # The incisal edge, a little translucent: it takes some of the dark behind it (a share of this photo's
        # teeth colour, not a fixed grey, which on a dark photo was brighter than the tooth).
        translucent = np.clip((t - 0.78) / 0.2, 0, 1)[..., None] * 0.12
        base = base * (1 - translucent) + translucent * (self.teeth * np.array([0.62, 0.6, 0.58], np.float32))
        warm = np.clip(1 - t / 0.3, 0, 1)[..., None] * 0.08
        base = base * (1 - warm) + warm * (self.teeth * np.array([0.7, 0.85, 1.0], np.float32))
        region_c = colour[y0:y1, x0:x1]
        region_a = alpha[y0:y1, x0:x1]
        hh, ww = region_a.shape
        a, base = a[:hh, :ww], base[:hh, :ww]
        region_c[:] = a[..., None] * base + (1 - a[..., None]) * region_c
        region_a[:] = np.maximum(region_a, a)

    def _palate(self) -> Sprite:
        """The roof of the mouth behind the upper teeth: lit just behind them, with the transverse ridges
        (rugae), fading into the dark of the throat."""
        mm = self.mm
        half = 0.9 * self.half_width
        line = self._line_y(np.array([self.centre_x]))[0]
        top, depth = line + 1.5 * mm, 7.0 * mm
        origin, colour, alpha = self._canvas(self.centre_x - half - 2, top - 2, self.centre_x + half + 2,
                                             top + depth + 2)
        S = SUPER
        h, w = alpha.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        u = (xx - (self.centre_x - origin[0]) * S) / (half * S)
        # Follow the lip line's curve across the mouth, so the palate's edge parallels the teeth.
        xs_img = origin[0] + (np.arange(w, dtype=np.float64) + 0.5) / S
        bend = ((self._line_y(xs_img) - line) * S).astype(np.float32)[None, :]
        v = (yy - (top - origin[1]) * S - bend) / (depth * S)  # 0 behind the teeth, 1 deep
        ridges = 1.0 + 0.22 * np.cos(2 * np.pi * v * 4.5) * np.clip(1 - v * 1.4, 0, 1)
        light = np.clip(1 - v, 0, 1) ** 1.5 * (1 - 0.5 * u**2)
        colour[:] = (self.lip * 0.7)[None, None, :] * (light * ridges)[..., None]
        alpha[:] = (np.clip(1 - v, 0, 1) * (np.abs(u) <= 1) * (v >= 0)).astype(np.float32)
        return self._finish(colour, alpha, origin, 0.5 * self.grain)

    def _throat(self) -> Sprite:
        """The back of the mouth, seen only when the jaw drops far: the soft palate's arch, the uvula
        hanging from it, the dark of the throat around it."""
        mm = self.mm
        half = 0.55 * self.half_width
        line = self._line_y(np.array([self.centre_x]))[0]
        top, bottom = line + 2.0 * mm, line + 17.0 * mm
        origin, colour, alpha = self._canvas(self.centre_x - half - 2, top - 2, self.centre_x + half + 2, bottom + 2)
        S = SUPER
        h, w = alpha.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx = (self.centre_x - origin[0]) * S
        y_mm = (yy / S + origin[1] - line) / mm  # mm below the rest lip line
        u = (xx - cx) / (half * S)
        wall = 0.5 * np.clip(1 - ((y_mm - 9.5) / 7.5) ** 2 - u**2, 0, 1) ** 0.5
        throat = np.exp(-(u / 0.45) ** 2 - ((y_mm - 11.5) / 4.0) ** 2)  # the dark opening behind the arch
        x_mm = (xx - cx) / (S * mm)
        uvula = np.exp(-(x_mm / 1.4) ** 4 - ((y_mm - 7.0) / 2.6) ** 4)
        shade = (0.55 * (1 - 0.8 * throat) * (0.7 + 0.3 * wall / 0.5)) * (1 - uvula) + 0.75 * uvula
        colour[:] = self.lip[None, None, :] * shade[..., None]
        alpha[:] = np.clip(np.maximum(wall * 2.0, uvula), 0, 1)
        return self._finish(colour, alpha, origin, 0.5 * self.grain)

    def _tongue(self) -> Sprite:
        mm = self.mm
        half = 0.8 * self.half_width
        line = float(self._line_y(np.array([self.centre_x]))[0])
        top = line - 9.0 * mm
        height = 18 * mm
        origin, colour, alpha = self._canvas(self.centre_x - half - 2, top - 2, self.centre_x + half + 2,
                                             top + height + 2)
        S = SUPER
        h, w = alpha.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx = (self.centre_x - origin[0]) * S
        cy = (top - origin[1]) * S + height * S
        u = (xx - cx) / (half * S)
        v = (yy - cy) / (height * S)  # -1 at the tongue's top, 0 at its centre
        inside = (u**2 + v**2) <= 1.0
        lit = np.clip(-v, 0, 1)  # the top surface catches the light
        groove = 1.0 - 0.18 * np.exp(-(u / 0.08) ** 2) * lit
        side = 1.0 - 0.45 * u**2
        # The surface is rough (papillae): a fine bumpy texture, about a millimetre across.
        bumps = cv2.GaussianBlur(self._rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.35 * mm * S)
        bumps *= 0.22 / max(1e-6, float(bumps.std()))
        shade = (0.7 + 0.5 * lit) * groove * side * (1.0 + bumps)
        colour[:] = self.tongue[None, None, :] * shade[..., None]
        alpha[:] = inside.astype(np.float32)
        return self._finish(colour, alpha, origin, 0.5 * self.grain)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation) taking points `src` to `dst`, least squares."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    den = float((a**2).sum())
    if den < 1e-9:
        return np.array([[1, 0, md[0] - ms[0]], [0, 1, md[1] - ms[1]]], np.float32)
    c = float((a * b).sum()) / den
    s = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / den
    r = np.array([[c, -s], [s, c]])
    t = md - r @ ms
    return np.hstack([r, t[:, None]]).astype(np.float32)


def over(interior: np.ndarray, bgra: np.ndarray, origin: np.ndarray, m: np.ndarray, roi_origin: np.ndarray) -> None:
    """Composite a premultiplied layer (rest-frame, top-left at `origin`) moved by the image-space map `m`
    (2×3) over `interior`, an ROI at `roi_origin`, in place."""
    # layer-local → image (by origin) → moved by m → ROI-local, as one affine.
    a = m.astype(np.float64).copy()
    a[:, 2] += a[:, :2] @ origin - roi_origin
    h, w = interior.shape[:2]
    moved = cv2.warpAffine(bgra, a.astype(np.float32), (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    interior *= 1.0 - moved[..., 3:4]
    interior += moved[..., :3]
