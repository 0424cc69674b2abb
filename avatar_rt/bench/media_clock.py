"""The same mouth measurement on the media clock, offline: how far after an onset the mouth visibly moves
in the frames the pipeline makes, with no transport, buffers or wall clock in the way.

What is left is the pipeline's own shape: an onset waits for the rest of its 40 ms frame, the
lip-sync model (which hears 80 ms ahead) may open the jaw before the sound, and the mouth needs a
frame or two to pass a quarter of its peak. Live latency is this plus the buffers and the work.
"""

from __future__ import annotations

import cv2
import numpy as np

from avatar_rt.bench.analysis import mouth_reaction
from avatar_rt.bench.call import ReceivedFrame
from avatar_rt.bench.stimulus import RATE, Stimulus


def media_reactions(stimulus: Stimulus, fps: float = 25.0, size: int = 512, motion: str = "auto",
                    behaviour: str = "auto") -> list[float | None]:
    """Seconds from each onset to the first moved frame, by frame index on the media clock."""
    from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
    from avatar_rt.motion.factory import make_motion_model
    from avatar_rt.pipeline import FramePipeline, frame_bounds

    portrait = load_portrait(DEFAULT_PORTRAIT, size=size)
    x0, y0, x1, y1 = portrait.mouth_box()
    pipe = FramePipeline(portrait, fps, motion_model=make_motion_model(motion, fps, behaviour, seed=0))
    pcm = np.concatenate([stimulus.pcm, np.zeros(RATE, dtype=np.int16)])
    frames: list[ReceivedFrame] = []
    n = 0
    while True:
        start, end = frame_bounds(n, fps)
        if end > len(pcm):
            break
        out = pipe.step(pcm[start:end])
        n += 1
        if out is None or out.image is None:
            continue
        # Frame k covers [k/fps, (k+1)/fps) of the timeline: the earliest a live server can make it is when its
        # last sample is in, so it is stamped with its end.
        t = (out.index + 1) / fps
        luma = cv2.cvtColor(out.image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        frames.append(ReceivedFrame(t, t, out.index, luma))
    return [mouth_reaction(frames, onset) for onset in stimulus.onsets_s]
