"""Stage A's second input: normalised log phone posteriors, one row per log-mel frame, 5 hops late.

    front = PhoneFeatures(AcousticModel.load(path), PhoneStats(...))   # or PhoneFeatures.from_config(meta, dir)
    stream = PhoneFeatureStream(front)        # push audio, get as many rows as LogMelStream gave frames
    rows = phone_features(front, audio)       # offline: len(audio) // 160 rows, the stream's numbers

Why, and what the numbers are: docs/lipsync.md ("The phone-posterior front end") and export/lipsync/sphinx_am.py.

Row t goes beside log-mel frame t (samples [160t − 240, 160t + 160)) and holds the posterior row of PocketSphinx
frame t − DELAY_HOPS (avatar_rt.audio.phone_posteriors), which needs samples up to 160(t − 5) + 890 = 160t + 90:
it is complete when the mel frame is, so the phone input adds no latency, and the model, which predicts hop
t − 8 from frame t, still sees that hop's phone evidence 3 hops past its end. Rows t < 5 are zeros (the
normalised mean). Per row: log(max(posterior, LOG_FLOOR)), minus the training set's mean, over its standard
deviation (`PhoneStats`, fixed, in the stage A model's metadata), clipped to ±CLIP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar_rt.audio.features import HOP
from avatar_rt.audio.phone_posteriors import DEFAULT_SCALE, AcousticModel, PhonePosteriorStream, phone_posteriors

ENGINE_NAME = "phone_am"  # engines/phone_am.npz, written by `python -m export.lipsync.sphinx_am --export`
DELAY_HOPS = 5  # PocketSphinx frame t − 5 beside mel frame t (its deltas look 3 frames ahead)
LOG_FLOOR = 1e-4
CLIP = 10.0


@dataclass(frozen=True)
class PhoneStats:
    """Per-phone mean and standard deviation of log(max(posterior, LOG_FLOOR)) over clean training audio."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_log_posteriors(cls, rows: np.ndarray) -> PhoneStats:
        rows = np.asarray(rows, np.float64)
        return cls(rows.mean(axis=0), np.maximum(rows.std(axis=0), 1e-3))

    @classmethod
    def identity(cls, n: int) -> PhoneStats:
        return cls(np.zeros(n), np.ones(n))


def log_posteriors(post: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(post, LOG_FLOOR))


@dataclass(frozen=True)
class PhoneFeatures:
    """The acoustic model and the settings that turn its posteriors into stage A's `phones` input."""

    model: AcousticModel
    stats: PhoneStats
    scale: float = DEFAULT_SCALE
    delay: int = DELAY_HOPS

    @property
    def n_phones(self) -> int:
        return len(self.model.phones)

    def normalise(self, post: np.ndarray) -> np.ndarray:
        z = (log_posteriors(post) - self.stats.mean) / self.stats.std
        return np.clip(np.nan_to_num(z), -CLIP, CLIP).astype(np.float32)

    def config(self, model_sha256: str) -> dict:
        """What a stage A model trained with these features records (`from_config` reads it back)."""
        return {"engine": ENGINE_NAME, "sha256": model_sha256, "phones": list(self.model.phones),
                "scale": self.scale, "delay_hops": self.delay, "log_floor": LOG_FLOOR, "clip": CLIP,
                "mean": [round(float(v), 6) for v in self.stats.mean],
                "std": [round(float(v), 6) for v in self.stats.std]}

    @classmethod
    def from_config(cls, config: dict | str, model_path: Path) -> PhoneFeatures:
        """From a stage A model's `phone_features` metadata and the acoustic model file it names, whose sha256
        must be the one recorded in that metadata; a mismatch raises ValueError naming it."""
        from avatar_rt.engines import sha256  # noqa: PLC0415

        c = json.loads(config) if isinstance(config, str) else config
        if sha256(model_path) != c.get("sha256"):
            raise ValueError(f"{model_path} is not the acoustic model the lip sync model was trained with "
                             f"(sha256 {c.get('sha256')}): re-export both with `python -m export.lipsync.train_all`")
        if c.get("log_floor") != LOG_FLOOR or c.get("clip") != CLIP:
            raise ValueError(f"phone features use log floor {c.get('log_floor')}, clip {c.get('clip')}; "
                             f"this runtime computes {LOG_FLOOR}, {CLIP}")
        model = AcousticModel.load(model_path)
        if list(model.phones) != list(c["phones"]):
            raise ValueError(f"{model_path} scores other phones than the lip sync model was trained on")
        return cls(model, PhoneStats(np.array(c["mean"]), np.array(c["std"])), float(c["scale"]),
                   int(c["delay_hops"]))


def phone_features(front: PhoneFeatures, audio: np.ndarray) -> np.ndarray:
    """Offline: (len(audio) // 160, n_phones) float32, the rows `PhoneFeatureStream` gives for the same audio."""
    n = len(audio) // HOP
    out = np.zeros((n, front.n_phones), np.float32)
    if n > front.delay:
        # rows j ≤ n − 1 − delay have their 3 frames of lookahead inside the audio: the streaming numbers
        post = phone_posteriors(front.model, np.asarray(audio), front.scale)
        out[front.delay:] = front.normalise(post[:n - front.delay])
    return out


class PhoneFeatureStream:
    """Streaming form: push samples, get one row for every log-mel frame completed by them (n // 160 in all)."""

    def __init__(self, front: PhoneFeatures):
        self.front = front
        self.posteriors = PhonePosteriorStream(front.model, front.scale)
        self.reset()

    def reset(self) -> None:
        self.posteriors.reset()
        self.samples = 0
        self.frames_done = 0
        self.pending = np.zeros((0, self.front.n_phones), np.float32)  # normalised rows not yet handed out

    def push(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio).reshape(-1)
        self.samples += len(audio)
        new = self.posteriors.push(audio)
        if len(new):
            self.pending = np.concatenate([self.pending, self.front.normalise(new)])
        n = self.samples // HOP - self.frames_done  # new mel frames
        out = np.zeros((n, self.front.n_phones), np.float32)
        t = self.frames_done + np.arange(n)
        rows = t - self.front.delay
        take = int(np.sum(rows >= 0))
        if take:
            assert len(self.pending) >= take, "a posterior row is late: the delay is shorter than the lookahead"
            out[n - take:] = self.pending[:take]
            self.pending = self.pending[take:]
        self.frames_done += n
        return out
