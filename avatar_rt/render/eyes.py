"""Eyelids that close over the eye on a blink.

The skin above the upper lid slides down with the lid edge (lashes included), the
stretch fading out a little above the lid, and covers the eye down to where the
lid now is. Works on the already-warped frame, so it follows head motion.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar_rt.avatar import landmarks as lm

STRETCH_IOD = 0.2  # how far above the lid the sliding skin fades back to still


class EyelidBlink:
    def __init__(self, iod: float, size: int):
        self.iod = iod
        self.size = size
        self._eyes = (
            (np.array(lm.RIGHT_EYE_UPPER), np.array(lm.RIGHT_EYE_LOWER), "r"),
            (np.array(lm.LEFT_EYE_UPPER), np.array(lm.LEFT_EYE_LOWER), "l"),
        )

    def composite(self, frame: np.ndarray, open_points: np.ndarray, closed_points: np.ndarray,
                  blink_r: float, blink_l: float) -> None:
        for upper, lower, side in self._eyes:
            if (blink_r if side == "r" else blink_l) <= 0.02:
                continue
            self._close_one(frame, open_points[upper], closed_points[upper], open_points[lower])

    def _close_one(self, frame: np.ndarray, lid: np.ndarray, lid_closed: np.ndarray, lower: np.ndarray) -> None:
        order = np.argsort(lid[:, 0])
        lid, lid_closed = lid[order], lid_closed[order]
        reach = STRETCH_IOD * self.iod
        x0 = max(0, int(np.floor(lid[:, 0].min())))
        x1 = min(self.size, int(np.ceil(lid[:, 0].max())) + 1)
        y0 = max(0, int(np.floor(lid[:, 1].min() - reach)))
        y1 = min(self.size, int(np.ceil(max(lid_closed[:, 1].max(), lower[:, 1].max()))) + 2)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        xs = np.arange(x0, x1, dtype=np.float32)
        top = np.interp(xs, lid[:, 0], lid[:, 1]).astype(np.float32)
        drop = np.interp(xs, lid[:, 0], lid_closed[:, 1] - lid[:, 1]).astype(np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        # The lid band (from `reach` above the resting lid down to the new lid
        # edge) is the old band stretched evenly: the skin unfolds, nothing jumps.
        band_top = top - reach
        stretch = reach / (reach + drop)
        src_y = np.where(ys > band_top, band_top + (ys - band_top) * stretch, ys).astype(np.float32)
        src_x = np.broadcast_to(xs, src_y.shape)
        patch = frame[y0:y1, x0:x1].copy()
        slid = cv2.remap(frame, np.ascontiguousarray(src_x), np.ascontiguousarray(src_y),
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # Only above the new lid edge; a one-pixel soft edge.
        cover = np.clip((top + drop) - ys + 0.5, 0.0, 1.0)[..., None]
        frame[y0:y1, x0:x1] = (cover * slid + (1 - cover) * patch).astype(np.uint8)
