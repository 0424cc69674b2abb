"""Speech/silence state from webrtcvad, with hangover so word gaps don't flicker it."""

from __future__ import annotations

import numpy as np
import webrtcvad

from avatar_rt.audio.ingress import CHUNK_SAMPLES, SAMPLE_RATE, Rechunker


class SpeechDetector:
    def __init__(self, aggressiveness: int = 2, *, onset_chunks: int = 3, hangover_chunks: int = 25):
        self._vad = webrtcvad.Vad(aggressiveness)
        self._rechunker = Rechunker(CHUNK_SAMPLES)
        self._onset = onset_chunks
        self._hangover = hangover_chunks
        self._voiced_run = 0
        self._since_voiced = hangover_chunks
        self.speaking = False

    def push(self, samples: np.ndarray) -> bool:
        """Feed 16 kHz int16 samples (any length); returns whether speech is on."""
        for chunk in self._rechunker.push(samples):
            voiced = self._vad.is_speech(chunk.tobytes(), SAMPLE_RATE)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            self._since_voiced = 0 if voiced else self._since_voiced + 1
            if self._voiced_run >= self._onset:
                self.speaking = True
            elif self._since_voiced >= self._hangover:
                self.speaking = False
        return self.speaking
