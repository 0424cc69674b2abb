"""A loudness-driven jaw: the stand-in motion model of the vertical slice.

It does not know phonemes — the jaw simply opens with the speech envelope, gated
by the voice-activity detector so noise does not chatter the mouth. The trained
audio-to-motion model (its own issue) replaces it behind the same interface.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from avatar_rt.motion.params import MotionParams


class LoudnessJawModel:
    """Streaming audio → jaw opening, one call per video frame.

    `lookahead_frames` is how far the output lags the newest audio: the frame
    for time t is emitted once audio up to t + lookahead has been seen, so the
    level is measured over a window centred on t rather than trailing it.
    """

    lookahead_frames = 1

    def __init__(self, *, attack: float = 0.65, release: float = 0.35, range_db: float = 24.0):
        self.attack = attack
        self.release = release
        self.range_db = range_db
        self.reset()

    def reset(self) -> None:
        self._levels: deque[float] = deque(maxlen=self.lookahead_frames + 1)
        self._speech: deque[bool] = deque(maxlen=self.lookahead_frames + 1)
        self._noise_db = -60.0
        self._peak_db = -20.0
        self._open = 0.0

    def step(self, audio: np.ndarray, speech: bool) -> MotionParams:
        """Feed one frame of 16 kHz mono int16 audio; get the params for `lookahead_frames` ago."""
        x = audio.astype(np.float32) / 32768.0
        finite = np.isfinite(x)
        rms = float(np.sqrt(np.mean(np.square(x[finite])))) if finite.any() else 0.0
        level_db = 20.0 * np.log10(rms + 1e-6)
        self._levels.append(level_db)
        self._speech.append(speech)
        # Track the noise floor during non-speech and the recent speech peak, so
        # the mapping adapts to the microphone's gain. Digital silence must not
        # drag the floor down to -120 dB, or every sound would open the jaw fully.
        if not speech:
            self._noise_db += 0.05 * (float(np.clip(level_db, -70.0, -20.0)) - self._noise_db)
        else:
            self._peak_db = max(level_db, self._peak_db - 0.02)
        centre_db = float(np.mean(self._levels))
        # Fully open at the speech peak, closed `range_db` below it (or at the
        # noise floor if that is higher): syllables open, consonants and gaps close.
        bottom = max(self._noise_db + 6.0, self._peak_db - self.range_db)
        span = max(6.0, self._peak_db - bottom)
        level = float(np.clip((centre_db - bottom) / span, 0.0, 1.0))
        target = level**1.5 if any(self._speech) else 0.0
        rate = self.attack if target > self._open else self.release
        self._open += rate * (target - self._open)
        return MotionParams(jaw_open=self._open, lip_spread=0.15 * self._open)
