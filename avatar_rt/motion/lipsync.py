"""Lip sync that reads speech: stage A (engines/lipsync_stage_a.onnx) streaming in ONNX Runtime.

One `step(audio, speech)` per video frame, behind the `MotionModel` interface of
avatar_rt/pipeline.py; it replaces the loudness jaw.

Per call: the frame's audio slice goes through the causal log-mel stream
(avatar_rt.audio.features.LogMelStream: the same code the model was trained on),
every newly completed 10 ms feature frame goes through the stateful ONNX model in
one run (conv buffers and GRU state carried across calls), and the outputs land
in a ring buffer indexed by hop. The returned articulation is the model's output
for the hop that contains the centre of video frame n = step − lookahead_frames.

## Alignment

* hop h spans samples [160h, 160h + 160); feature frame h ends with it;
* the model's output t is its prediction for hop t − R (R = right context, 8 hops =
  80 ms, from the model's metadata), so hop h is known once feature frame h + R is,
  i.e. once samples up to 160(h + R + 1) have arrived;
* video frame n shows hop h(n) = floor((n + ½)·100 / fps), the hop containing the
  frame's centre time (docs/lipsync.md);
* the pipeline's step m has delivered samples up to E(m) = floor((m + 1)·16000 / fps)
  (pipeline.frame_bounds) and shows frame n = m − L.

So L = `lookahead_frames` is the smallest L with 160·(h(m − L) + R + 1) ≤ E(m) for
every m: at 25 fps that is 160·(4m − 4L + 2 + 9) ≤ 640(m + 1), i.e. 4L ≥ R − 1,
L = 2 (80 ms; the model uses 80 of them and the frame's centre hop needs one more
hop, which the frame's second half supplies); at 30 fps L = 3. With L from this
rule the output for frame n is always available; the pipeline's delay line holds
frame n's own audio for exactly L steps, so lips and voice leave together. If a
caller feeds slices that do not follow the clock (a one-sample chunk), the model
returns the newest hop it has instead and counts it in `late_frames`.

## Silence

The pipeline's VAD flag gates the mouth: while no step in the window around the
shown frame (frame n − 1 … the newest step) is speech, the articulation eases to
rest (closed mouth) and the viseme posteriors to `sil`; when speech starts the gate
opens before the shown frame reaches it (the flag comes L frames early).

## Stage B

With a `BehaviourModel` (engines/lipsync_stage_b.onnx, avatar_rt/motion/behaviour.py)
the returned params also carry head yaw/pitch/roll, brow raises and blinks sampled
from stage B, fed with stage A's raw (ungated) rows for every behaviour frame's hop.
`behaviour_active` tells the pipeline to leave those to the model (its idle
behaviour then only breathes).
"""

from __future__ import annotations

import functools
import json
import math
from collections import deque
from fractions import Fraction
from pathlib import Path

import numpy as np

from avatar_rt.audio.features import HOP, SAMPLE_RATE, FeatureStats, LogMelStream
from avatar_rt.audio.features import config as feature_config
from avatar_rt.audio.phone_features import ENGINE_NAME as PHONE_ENGINE
from avatar_rt.audio.phone_features import PhoneFeatures, PhoneFeatureStream
from avatar_rt.engines import EngineError, Runner, engine_path, open_model
from avatar_rt.motion.behaviour import BehaviourModel
from avatar_rt.motion.closure_boost import ClosureBoost
from avatar_rt.motion.params import MotionParams

ENGINE_NAME = "lipsync_stage_a"
ARTICULATION = ("jaw_open", "lip_spread", "lip_round", "upper_lip_raise", "lower_lip_drop", "lip_press",
                "teeth_show")
_RING = 512  # hops of outputs kept (5 s): far more than any lookahead


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def hop_for_frame(n: int, fps: float) -> int:
    """The 10 ms hop containing video frame n's centre time (n + ½)/fps."""
    f = _fps_fraction(fps)
    return math.floor(Fraction(2 * n + 1, 2) * 100 / f)


def frame_end_sample(m: int, fps: float) -> int:
    """End (exclusive) of step m's audio slice: pipeline.frame_bounds(m, fps)[1]."""
    return int((m + 1) * SAMPLE_RATE // fps)


@functools.lru_cache(maxsize=16)
def lookahead_for(fps: float, right_context: int) -> int:
    """The smallest lookahead (video frames) with which every shown frame's hop is already computed.
    Cached: the search costs ~60 ms of exact fractions, and every new session asks again."""
    period = 1000  # the pattern repeats every fps·k frames; 1000 steps cover 25, 30, 29.97, 60 …
    for lookahead in range(0, 64):
        if all((hop_for_frame(m - lookahead, fps) + right_context + 1) * HOP <= frame_end_sample(m, fps)
               for m in range(lookahead, lookahead + period)):
            return lookahead
    raise ValueError(f"no lookahead works for fps={fps}, right context {right_context}")


def load_session(path: Path) -> Runner:
    """Stage A on the process's backend (avatar_rt.engines.select)."""
    return open_model(path, "lip sync model")


def phone_front_for(meta: dict[str, str], engines_dir: Path | None) -> PhoneFeatures:
    """The phone-posterior front end a stage A model with a `phones` input was trained with: its acoustic model
    from the manifest of `engines_dir` (sha256 checked there and against the model's metadata)."""
    try:
        return PhoneFeatures.from_config(meta["phone_features"], engine_path(PHONE_ENGINE, engines_dir))
    except KeyError as err:
        raise EngineError(f"lip sync model has a phones input but lacks its metadata ({err}): rebuild it with "
                          "export.lipsync.stage_a") from err
    except ValueError as err:
        raise EngineError(f"lip sync model's phone front end: {err}") from err


class StageAStream:
    """The stateful ONNX model with its feature streams: audio in, per-hop outputs out (no video clock). A model
    with a `phones` input also gets avatar_rt.audio.phone_features rows (acoustic model from `engines_dir`)."""

    def __init__(self, session: Runner, engines_dir: Path | None = None,
                 closure_boost: ClosureBoost | None = None):
        self.session = session
        self.closure_boost = closure_boost  # avatar_rt.motion.closure_boost: fed the same audio
        meta = session.metadata
        try:
            self.right_context = int(meta["right_context_hops"])
            stats = FeatureStats.from_json(meta["feature_stats"])
            trained_config = json.loads(meta["feature_config"])
            self.visemes = tuple(meta["visemes"].split(","))
            self.phonemes = tuple(meta["phonemes"].split(","))
            articulation = tuple(meta["articulation"].split(","))
        except (KeyError, ValueError) as err:
            raise EngineError(f"lip sync model lacks its metadata ({err}): rebuild it with export.lipsync.stage_a")
        if trained_config != json.loads(json.dumps(feature_config())):
            raise EngineError("lip sync model was trained on other features than avatar_rt.audio.features computes: "
                              f"{trained_config} vs {feature_config()}; retrain it")
        if articulation != ARTICULATION:
            raise EngineError(f"lip sync model outputs {articulation}, the runtime expects {ARTICULATION}")
        self.features = LogMelStream(stats)
        names = {i.name for i in session.inputs}
        self.phones = PhoneFeatureStream(phone_front_for(meta, engines_dir)) if "phones" in names else None
        self._state_names = [i.name for i in session.inputs if i.name.startswith("state_")]
        self._state_shapes = {i.name: [d if isinstance(d, int) else 1 for d in i.shape]
                              for i in session.inputs if i.name.startswith("state_")}
        self._out_names = ["articulation", "viseme_probs", "phoneme_probs"] + ["next_" + s for s in self._state_names]
        # Where each state's symbolic `batch` axis is (graphs since issue 17; the GRU's is 1), so streams of one
        # model can share a call (avatar_rt.motion.batching); None for graphs with a literal batch of 1.
        shapes = {i.name: i.shape for i in session.inputs}
        self.batch_axes = ({n: shapes[n].index("batch") for n in self._state_names}
                           if "batch" in shapes["mel"] and all("batch" in shapes[n] for n in self._state_names)
                           else None)
        self.articulation = np.zeros((_RING, len(ARTICULATION)), np.float32)
        self.viseme_probs = np.zeros((_RING, len(self.visemes)), np.float32)
        self.phoneme_probs = np.zeros((_RING, len(self.phonemes)), np.float32)
        self.energy = np.zeros(_RING, np.float32)  # mean normalised log-mel per hop (stage B's conditioning)
        self.reset()

    def reset(self) -> None:
        self.features.reset()
        if self.phones is not None:
            self.phones.reset()
        if self.closure_boost is not None:
            self.closure_boost.reset()
        self._state = {n: np.zeros(s, np.float32) for n, s in self._state_shapes.items()}
        self.hops_done = 0  # outputs exist for hops < hops_done

    def push(self, audio: np.ndarray) -> int:
        """Feed samples; returns how many new hops have outputs."""
        feed = self.prepare(audio)
        return 0 if feed is None else self.commit(feed, self.run(feed))

    def prepare(self, audio: np.ndarray) -> dict[str, np.ndarray] | None:
        """Feed samples to the feature streams; the model's inputs (batch 1, no state) for the new feature frames,
        None when the samples completed none."""
        mel = self.features.push(audio)
        if self.closure_boost is not None:
            self.closure_boost.push(audio)
        feed = {"mel": mel[None]}
        if self.phones is not None:  # one row per mel frame, also when there are none (it keeps the audio)
            feed["phones"] = self.phones.push(audio)[None]
        return feed if len(mel) else None

    @property
    def state(self) -> dict[str, np.ndarray]:
        return self._state

    @property
    def output_names(self) -> list[str]:
        return self._out_names

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One model call for this stream alone (batch 1)."""
        return self.call({**feed, **self._state})

    def call(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One call of the model on complete inputs (states included, any batch); outputs in `output_names`
        order."""
        out = self.session.run(inputs, self._out_names)
        return [out[n] for n in self._out_names]

    def commit(self, feed: dict[str, np.ndarray], res: list[np.ndarray]) -> int:
        """Take this stream's outputs of `feed` (batch 1, in `output_names` order): the new state and the hops'
        outputs into the ring; returns how many new hops have outputs."""
        mel = feed["mel"][0]
        for name, value in zip(self._state_names, res[3:]):
            self._state[name] = value
        t0 = self.features.frames_done - len(mel)  # network time of the first new output
        self.energy[(t0 + np.arange(len(mel))) % _RING] = mel.mean(axis=1)
        new = 0
        for i in range(len(mel)):
            hop = t0 + i - self.right_context
            if hop < 0:
                continue
            k = hop % _RING
            self.articulation[k] = res[0][0, i]
            self.viseme_probs[k] = res[1][0, i]
            self.phoneme_probs[k] = res[2][0, i]
            new += 1
        self.hops_done = max(self.hops_done, self.features.frames_done - self.right_context)
        return new


class LipSyncModel:
    """Streaming audio → articulation with stage A; `MotionModel` for the pipeline.

    After each `step`: `viseme_posteriors` (15, in `visemes` order) and `phoneme_posteriors` are the model's
    posteriors for the frame just returned, `articulation` its 7 values before the silence gate.
    """

    def __init__(self, fps: float = 25.0, *, model_path: str | Path | None = None,
                 engines_dir: Path | None = None, vad_gate: bool = True,
                 session: Runner | None = None, behaviour: BehaviourModel | None = None,
                 closure_boost: bool = True):
        if session is None:
            path = Path(model_path) if model_path is not None else engine_path(ENGINE_NAME, engines_dir)
            session = load_session(path)
        self.fps = float(fps)
        if engines_dir is None and model_path is not None:
            engines_dir = Path(model_path).parent  # its acoustic model (phones input) lies beside it
        # `closure_boost`: show a p/b/m closure also when PocketSphinx's acoustic model hears one
        # (avatar_rt.motion.closure_boost; off where the engines directory has no phone_am).
        self.stream = StageAStream(session, engines_dir, ClosureBoost.load(engines_dir) if closure_boost else None)
        self.right_context = self.stream.right_context
        self.visemes = self.stream.visemes
        self.lookahead_frames = lookahead_for(self.fps, self.right_context)
        self.vad_gate = vad_gate
        self.behaviour = behaviour
        if behaviour is not None and behaviour.cond_dim != len(ARTICULATION) + len(self.visemes) + 1:
            raise EngineError(f"behaviour model expects {behaviour.cond_dim} conditioning values per frame, stage A "
                              f"gives {len(ARTICULATION) + len(self.visemes) + 1}")
        self._sil = np.zeros(len(self.visemes), np.float32)
        self._sil[self.visemes.index("sil") if "sil" in self.visemes else 0] = 1.0
        self._pp = self.visemes.index("PP")  # the bilabial closure viseme
        self.reset()

    def reset(self) -> None:
        self.stream.reset()
        self._steps = 0
        self._speech: deque[bool] = deque(maxlen=self.lookahead_frames + 2)
        self._gate = 0.0
        self.late_frames = 0
        self.articulation = np.zeros(len(ARTICULATION), np.float32)
        self.viseme_posteriors = self._sil.copy()
        self.phoneme_posteriors = np.zeros(len(self.stream.phonemes), np.float32)
        self.last_hop = -1
        self._behaviour_rows = 0  # behaviour frames whose stage A row has been handed over
        if self.behaviour is not None:
            self.behaviour.reset()

    @property
    def behaviour_active(self) -> bool:
        return self.behaviour is not None

    def _feed_behaviour(self, newest: int) -> None:
        b, st = self.behaviour, self.stream
        while True:
            hop = b.hops_per_frame * self._behaviour_rows + b.hops_per_frame // 2
            if hop > newest:
                return
            k = hop % _RING
            e = (hop + b.energy_ahead) % _RING  # feature frames run right_context hops ahead of the outputs
            b.add_row(np.concatenate([st.articulation[k], st.viseme_probs[k], st.energy[e:e + 1]]))
            self._behaviour_rows += 1

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.lookahead_frames / self.fps

    def step(self, audio: np.ndarray, speech: bool) -> MotionParams:
        """Feed one video frame of 16 kHz mono audio (int16, or float in int16 scale); get frame
        `step − lookahead_frames`'s articulation (rest while the delay fills)."""
        self.stream.push(audio)
        params, hop = self.finish_stage_a(speech)
        if hop is not None and self.behaviour is not None:
            self.queue_behaviour()
            self.behaviour.sample_pending()
            self.apply_behaviour(params, hop)
        return params

    # `step` in phases, so that avatar_rt.motion.batching can run many streams' model calls together:
    # stream.prepare → (stage A call) → stream.commit → finish_stage_a → queue_behaviour → (stage B calls)
    # → apply_behaviour. `step` runs the same phases with calls of batch 1.

    def finish_stage_a(self, speech: bool) -> tuple[MotionParams, int | None]:
        """After stage A has taken this step's audio: the articulation of the shown frame and its hop (None while
        the delay fills: then the params are rest and stage B is not fed)."""
        m = self._steps
        self._steps += 1
        self._speech.append(bool(speech))
        n = m - self.lookahead_frames
        if n < 0 or self.stream.hops_done == 0:
            return MotionParams(), None
        hop = hop_for_frame(n, self.fps)
        newest = self.stream.hops_done - 1
        if hop > newest:  # the caller's slices ran ahead of the audio actually delivered
            self.late_frames += 1
            hop = newest
        hop = max(hop, newest - _RING + 1)
        k = hop % _RING
        art = self.stream.articulation[k]
        vis = self.stream.viseme_probs[k]
        self.last_hop = hop
        self.articulation = art.copy()
        self.phoneme_posteriors = self.stream.phoneme_probs[k].copy()
        if self.vad_gate:
            target = 1.0 if any(self._speech) else 0.0
            self._gate += (0.6 if target > self._gate else 0.3) * (target - self._gate)
            g = self._gate
            art = art * g
            self.viseme_posteriors = g * vis + (1.0 - g) * self._sil
        else:
            self.viseme_posteriors = vis.copy()
        a = np.clip(art, 0.0, 1.0).tolist()
        # Two heads estimate the same closure: the articulation's lip_press and the viseme head's PP posterior.
        # On voices it never heard the press head hedges (0.3–0.5) more than the classifier; showing the closure
        # when either is sure closed 2–7 % more of the held-out voices' p/b/m for +0.1–0.3 % presses away from
        # any p/b/m (benchmarks/lipsync_voices.py, 2026-11-29; docs/lipsync.md).
        press = max(a[5], float(self.viseme_posteriors[self._pp]))
        if self.stream.closure_boost is not None:  # a third, trained on other speakers (closure_boost.py)
            press = max(press, self.stream.closure_boost.press(hop) * (self._gate if self.vad_gate else 1.0))
        params = MotionParams(jaw_open=a[0], lip_spread=a[1], lip_round=a[2], upper_lip_raise=a[3],
                              lower_lip_drop=a[4], lip_press=press, teeth_show=a[6])
        return params, hop

    def queue_behaviour(self) -> None:
        """Hand stage B the rows of every behaviour frame stage A now has (it samples them on request)."""
        self._feed_behaviour(self.stream.hops_done - 1)

    def apply_behaviour(self, params: MotionParams, hop: int) -> None:
        b = self.behaviour.value_at(hop)
        if b is not None:
            yaw, pitch, roll, brow, blink = (float(v) for v in b)
            params.head_yaw, params.head_pitch, params.head_roll = yaw, pitch, roll
            params.brow_raise_l = params.brow_raise_r = brow
            params.blink_l = params.blink_r = blink
