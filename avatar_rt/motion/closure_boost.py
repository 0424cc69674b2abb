"""A second ear for p, b and m: PocketSphinx's acoustic model (engines/phone_am.npz) beside stage A.

Stage A presses the lips on 93–100 % of p/b/m in the voices it was trained on but hedges on voices it never heard
(72 % for a held-out male reader, 48 % for a held-out female narrator, 72 % for flite's awb). PocketSphinx's
en-US acoustic model was trained on hundreds of speakers; the sum of its P, B and M posteriors
(avatar_rt.audio.phone_posteriors) rises on bilabials in voices neither model heard. The lip press shown is the
larger of stage A's and this score mapped through a ramp, so a closure is shown when either ear is sure.

    boost = ClosureBoost.load(engines_dir)      # None when the engines directory has no phone_am
    boost.push(pcm)                             # the same 16 kHz audio stage A gets, in any chunks
    press = boost.press(hop)                    # 0…1 for a hop whose posterior row exists, else 0

The ramp (LOW → 0, HIGH → 1: the shown press passes 0.5 at their midpoint 0.45) was chosen on TRAINED voices only
(Allison, Festival kal, espeak en-us; 20 utterances each), for at most ~2 % presses on speech frames far (> 80 ms)
from any p/b/m: a threshold sweep (2026-11-30) gave, for the score alone or'd with stage A, Festival kal 2.4 % of
such frames pressed at 0.40 and every trained voice ≤ 1.6 % at 0.50; 0.45 lies between (docs/lipsync.md).
Row k of the posterior stream is hop k (its 25.6 ms window starts with the hop) and is final 3 frames later
(deltas), well inside stage A's 80 ms lookahead: the boost adds no latency. Only the rows asked for are scored.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from avatar_rt.audio.phone_features import ENGINE_NAME as PHONE_ENGINE
from avatar_rt.audio.phone_posteriors import AcousticModel, PhonePosteriorStream, posteriors_from_loglik, senone_loglik
from avatar_rt.audio.sphinx_mfcc import N_CEP
from avatar_rt.engines import ENGINES_DIR, MANIFEST_NAME, EngineError, engine_path, load_manifest

LOW, HIGH = 0.30, 0.60  # P(P)+P(B)+P(M) mapped linearly to a press of 0 … 1 (see the module docstring)
BILABIAL_PHONES = ("P", "B", "M")
_RING = 512  # hops kept (5 s), as stage A's ring


@functools.lru_cache(maxsize=4)
def _shared_model(path: str, mtime_ns: int) -> AcousticModel:
    """The acoustic model is read-only: every session's boost shares one copy (~4 MB of arrays) per file version."""
    return AcousticModel.load(Path(path))


class ClosureBoost:
    def __init__(self, model: AcousticModel, low: float = LOW, high: float = HIGH):
        if not 0.0 <= low < high:
            raise ValueError(f"closure boost ramp needs 0 <= low < high, got {low}, {high}")
        self.low, self.high = low, high
        self._model = model
        self._stream = PhonePosteriorStream(model)
        self._columns = [model.phones.index(p) for p in BILABIAL_PHONES]
        # Feature rows are kept and scored only when asked for: a video frame shows one hop in 4 (25 fps), and
        # scoring (5 376 Gaussians × 3 streams a row) is what costs; 4 sessions on 2 cores felt the difference.
        self._features = np.zeros((_RING, 3 * N_CEP), np.float32)
        self._score = np.full(_RING, np.nan, np.float32)
        self.reset()

    @classmethod
    def load(cls, engines_dir: Path | None = None) -> ClosureBoost | None:
        """From the engines directory's manifest; None when it lists no phone_am (an engines directory built
        before the acoustic model shipped, or a bare model file without a manifest); a listed but missing or corrupt
        file is an EngineError."""
        if not ((engines_dir or ENGINES_DIR) / MANIFEST_NAME).is_file():
            return None
        if PHONE_ENGINE not in load_manifest(engines_dir)["engines"]:
            return None
        path = engine_path(PHONE_ENGINE, engines_dir)
        try:
            return cls(_shared_model(str(path), path.stat().st_mtime_ns))
        except (OSError, KeyError, ValueError) as err:
            raise EngineError(f"cannot read the acoustic model {path}: {err}") from err

    def reset(self) -> None:
        self._stream.reset()
        self._score[:] = np.nan
        self.rows = 0  # feature rows (= hops) final so far

    def push(self, audio: np.ndarray) -> None:
        rows = self._stream.push_features(np.asarray(audio))
        if len(rows):
            at = (self.rows + np.arange(len(rows))) % _RING
            self._features[at] = rows
            self._score[at] = np.nan
            self.rows += len(rows)

    def score(self, hop: int) -> float | None:
        """P(P)+P(B)+P(M) of `hop`, None when its row is not final yet or has left the ring."""
        if hop < 0 or hop >= self.rows or hop < self.rows - _RING:
            return None
        k = hop % _RING
        if np.isnan(self._score[k]):
            ll = senone_loglik(self._model, self._features[k:k + 1])
            self._score[k] = posteriors_from_loglik(self._model, ll)[0, self._columns].sum()
        return float(self._score[k])

    def press(self, hop: int) -> float:
        s = self.score(hop)
        return 0.0 if s is None else float(np.clip((s - self.low) / (self.high - self.low), 0.0, 1.0))
