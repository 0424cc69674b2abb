"""What the bench says: short words with sharp onsets, each after enough silence for the mouth to rest.

The mouth's reaction to an onset is only measurable if the face is still before it, so every
word follows ≥ 1.2 s of silence; open-vowel words ("ah", "oh", "eye") start with the jaw
opening, so the first visible change is the onset itself (a /p/ or /m/ would start closed).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
WORDS = ("ah", "oh", "eye", "hey", "are", "owl")
GAP_S = 1.4  # silence before each word
ONSET_DB = -30.0  # an onset: the 10 ms level rises past this much below the word's peak
SILENCE_DBFS = -50.0  # never an onset below this, however quiet the whole recording is
MIN_SILENCE_S = 0.8  # for a WAV given: an onset must follow this much silence


@dataclass
class Stimulus:
    pcm: np.ndarray  # int16 16 kHz mono
    onsets_s: list[float]  # speech onsets, seconds into pcm
    source: str

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE

    def pcm_48k(self) -> np.ndarray:
        return np.repeat(self.pcm, 3)  # exact 3× upsampling keeps sample positions trivial


def _levels_db(pcm: np.ndarray, hop: int = RATE // 100) -> np.ndarray:
    n = len(pcm) // hop
    x = pcm[: n * hop].astype(np.float64).reshape(n, hop) / 32768.0
    return 20.0 * np.log10(np.sqrt((x ** 2).mean(axis=1)) + 1e-9)


def find_onsets(pcm: np.ndarray, min_silence_s: float = MIN_SILENCE_S) -> list[float]:
    """Times (s) where the level rises ONSET_DB below the clip's peak after ≥ min_silence_s of quiet."""
    levels = _levels_db(pcm)
    if not len(levels):
        return []
    loud = (levels > levels.max() + ONSET_DB) & (levels > SILENCE_DBFS)
    onsets, quiet_run = [], int(min_silence_s * 100)  # the clip's start counts as silence
    for i, is_loud in enumerate(loud):
        if is_loud and quiet_run >= min_silence_s * 100:
            onsets.append(i / 100.0)
        quiet_run = 0 if is_loud else quiet_run + 1
    return onsets


def _read_audio(path: Path) -> np.ndarray:
    """Any audio FFmpeg reads, as 16 kHz mono int16 (raises AvatarRtError with a clear message)."""
    from avatar_rt.offline import decode_audio

    return decode_audio(path).pcm16k


def espeak_words(seconds: float, voice: str = "en-us") -> Stimulus:
    """Words from WORDS, each after GAP_S of silence, until `seconds` are filled."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng), or pass --wav")
    words = []
    with tempfile.TemporaryDirectory() as d:
        for word in WORDS:
            path = Path(d) / f"{word}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), word], check=True, capture_output=True)
            pcm = _read_audio(path)
            start = find_onsets(pcm, min_silence_s=0.0)[0]
            words.append(pcm[int(start * RATE):])  # the word starts exactly at its onset
    gap = np.zeros(int(GAP_S * RATE), dtype=np.int16)
    parts, onsets, t, k = [], [], 0.0, 0
    while t + GAP_S + len(words[k % len(words)]) / RATE <= seconds or not onsets:
        word = words[k % len(words)]
        parts += [gap, word]
        onsets.append(t + GAP_S)
        t += GAP_S + len(word) / RATE
        k += 1
    tail = max(0, int((seconds - t) * RATE))
    pcm = np.concatenate(parts + [np.zeros(tail, dtype=np.int16)])
    return Stimulus(pcm, onsets, f"espeak-ng {voice}: {', '.join(WORDS)} after {GAP_S} s silences")


def from_wav(path: Path) -> Stimulus:
    pcm = _read_audio(path)
    onsets = find_onsets(pcm)
    if not onsets:
        raise ValueError(f"{path}: no speech onset after {MIN_SILENCE_S} s of silence found")
    return Stimulus(pcm, onsets, str(path))
