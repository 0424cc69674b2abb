"""One session's media pipeline on one clock: audio slice in → (video frame, paired audio) out.

The media clock is the audio sample count: frame n covers samples
[floor(n·sr/fps), floor((n+1)·sr/fps)), and its pts is n in a 1/fps time base.
The motion model needs `lookahead_frames` of future audio, so the frame that
comes out of step n is frame n − lookahead, paired with *its own* audio slice,
which a delay line has held back exactly that long. Lips and voice therefore
leave the pipeline together, whatever the lookahead.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from avatar_rt.audio.ingress import SAMPLE_RATE
from avatar_rt.audio.vad import SpeechDetector
from avatar_rt.avatar.reference import Portrait
from avatar_rt.edits.engine import EditEngine
from avatar_rt.motion.idle import IdleMotion
from avatar_rt.motion.loudness_jaw import LoudnessJawModel
from avatar_rt.motion.params import PARAM_INDEX, PARAMS, MotionParams
from avatar_rt.motion.presence import AgentPresence
from avatar_rt.render.accessories import Glasses
from avatar_rt.render.renderer import PortraitRenderer
from avatar_rt.rig.landmark_rig import LandmarkRig


class MotionModel(Protocol):
    """Streaming audio → motion. One `step` per video frame; output lags input by `lookahead_frames`."""

    lookahead_frames: int

    def reset(self) -> None: ...

    def step(self, audio: np.ndarray, speech: bool) -> MotionParams: ...


@dataclass
class FrameTimings:
    """Per-stage wall-clock stamps (time.monotonic), so latency can be attributed."""

    audio_arrival: float | None = None  # when the newest sample of this frame's audio reached the server
    consumed: float | None = None  # the tick that took this frame's audio (lookahead_frames ticks before `tick`)
    tick: float = 0.0  # when the clock asked for this frame
    motion_done: float = 0.0
    rig_done: float = 0.0
    render_done: float = 0.0
    converted: float | None = None  # when the image became an encoder-ready YUV frame
    sent: float | None = None  # when the transport took the frame
    encoded: float | None = None  # when the transport had encoded and sent it and asked for the next


@dataclass
class OutputFrame:
    index: int  # frame number on the media clock; pts in a 1/fps time base
    image: np.ndarray | None  # (size, size, 3) uint8 BGR; None when rendering was skipped to catch up
    audio: np.ndarray  # int16 16 kHz mono: exactly this frame's slice of the timeline
    speech: bool
    params: MotionParams
    timings: FrameTimings = field(default_factory=FrameTimings)


# The articulation parameters: what a barge-in releases to rest.
ARTICULATION_INDEX = np.array([PARAM_INDEX[p.name] for p in PARAMS if p.group == "articulation"])
# After an interrupt each frame may open the mouth at most this fraction of the previous frame's opening,
# until the frames made from post-interrupt audio come out (plus a small margin for the model's smoothing).
RELEASE_PER_FRAME = 0.5
RELEASE_MARGIN_FRAMES = 2


def level_db(audio: np.ndarray) -> float:
    x = audio.astype(np.float32) / 32768.0
    return float(20.0 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-6)) if len(x) else -120.0


def frame_bounds(n: int, fps: float, sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """Sample range [start, end) of frame n on the media clock."""
    return int(n * sample_rate // fps), int((n + 1) * sample_rate // fps)


class FramePipeline:
    """audio → VAD → motion model → idle behaviour → rig → renderer, one frame per call."""

    def __init__(self, portrait: Portrait, fps: float = 25.0, *, motion_model: MotionModel | None = None,
                 idle: IdleMotion | None = None, renderer: PortraitRenderer | None = None,
                 edits: EditEngine | None = None):
        self.portrait = portrait
        self.fps = fps
        self.motion = motion_model or LoudnessJawModel()
        self.idle = idle or IdleMotion(fps)
        # Lip-sync stage B drives head turns and blinks when the motion model has it; idle then only breathes.
        self._behaviour = getattr(self.motion, "behaviour", None)
        self.idle.head_and_blinks = self._behaviour is None
        self.rig = LandmarkRig(portrait)
        self.renderer = renderer or PortraitRenderer(portrait)
        self.vad = SpeechDetector()
        self.edits = edits
        self._glasses: Glasses | None = None
        # A new portrait (static edits re-baked) waiting to be swapped in, and the old one fading out.
        self._incoming: tuple[Portrait, PortraitRenderer, float] | None = None
        self._outgoing: tuple[LandmarkRig, PortraitRenderer, float, float] | None = None
        self._step = 0
        self._interrupt_requested = False
        # What a voice agent says it is doing (idle / listening / thinking / speaking); None without an agent.
        self.agent_state: str | None = None
        self.presence = AgentPresence(fps)
        self._release_until = -1  # output frames below this index are released towards rest (barge-in)
        self._last_articulation = np.zeros(len(ARTICULATION_INDEX), np.float32)
        # Audio (its arrival time, the tick that took it) waiting for its frame to come out of the motion model.
        self._delay: deque[tuple[np.ndarray, float | None, bool, float]] = deque()

    @property
    def lookahead_frames(self) -> int:
        return self.motion.lookahead_frames

    @property
    def lookahead_ms(self) -> float:
        return 1000.0 * self.lookahead_frames / self.fps

    def swap_portrait(self, portrait: Portrait, renderer: PortraitRenderer, fade_s: float = 0.3) -> None:
        """Start drawing from a new portrait at the next frame, cross-fading from the old over `fade_s`."""
        self._incoming = (portrait, renderer, fade_s)

    def _install_incoming(self, t: float) -> None:
        portrait, renderer, fade_s = self._incoming
        self._incoming = None
        if fade_s > 0:
            self._outgoing = (self.rig, self.renderer, t, t + fade_s)
        self.portrait, self.renderer = portrait, renderer
        self.rig = LandmarkRig(portrait)
        self._glasses = None

    def _render(self, params: MotionParams, t: float, glasses: float, timings: FrameTimings) -> np.ndarray:
        pose = self.rig.pose(params)
        timings.rig_done = time.monotonic()
        image = self.renderer.render(pose)
        if glasses > 0.01:
            if self._glasses is None:
                self._glasses = Glasses(self.rig)
            self._glasses.draw(image, pose, glasses)
        if self._outgoing is not None:
            rig, renderer, start, end = self._outgoing
            if t >= end:
                self._outgoing = None
            else:
                old = renderer.render(rig.pose(params))
                x = (t - start) / (end - start)
                image = cv2.addWeighted(image, x * x * (3 - 2 * x), old, 1 - x * x * (3 - 2 * x), 0)
        return image

    @property
    def media_time(self) -> float:
        """Media time (s) of the next frame to come out: where an edit made now takes effect."""
        return max(0, self._step - self.lookahead_frames) / self.fps

    def interrupt(self) -> None:
        """Barge-in: from the next step, the audio still in the delay line is silenced and the mouth closes
        (each frame at most `RELEASE_PER_FRAME` of the previous one's articulation) until the frames made
        from audio after the interrupt come out. Safe to call from another thread than `step`'s."""
        self._interrupt_requested = True

    def _apply_interrupt(self) -> None:
        self._interrupt_requested = False
        for i, (audio, arrival, _speech, consumed) in enumerate(self._delay):
            self._delay[i] = (np.zeros_like(audio), arrival, False, consumed)
        self._release_until = self._step + RELEASE_MARGIN_FRAMES

    def _release(self, params: MotionParams, index: int) -> MotionParams:
        vector = params.to_vector()
        if index < self._release_until:
            vector[ARTICULATION_INDEX] = np.minimum(vector[ARTICULATION_INDEX],
                                                    RELEASE_PER_FRAME * self._last_articulation)
            params = MotionParams.from_vector(vector)
        self._last_articulation = vector[ARTICULATION_INDEX].astype(np.float32)
        return params

    @property
    def frames_in_flight(self) -> int:
        """Steps whose audio is still in the delay line (their frames have not come out yet)."""
        return len(self._delay)

    @property
    def next_step_time(self) -> float:
        """Media time (s) of the audio the next `step` takes: where audio queued now starts to play."""
        return self._step / self.fps

    def samples_for_step(self) -> int:
        start, end = frame_bounds(self._step, self.fps)
        return end - start

    def step(self, audio: np.ndarray, arrival: float | None = None, *, render: bool = True,
             tick: float | None = None) -> OutputFrame | None:
        """Consume the next slice of the timeline (`samples_for_step()` samples).

        Returns the frame `lookahead_frames` behind it, or None while the delay line fills.
        """
        timings = FrameTimings(tick=time.monotonic() if tick is None else tick)
        expected = self.samples_for_step()
        if len(audio) != expected:
            raise ValueError(f"step {self._step} needs {expected} samples, got {len(audio)}")
        audio = np.array(audio, dtype=np.int16)  # a copy: the delay line must not alias the caller's buffer
        if self._interrupt_requested:
            self._apply_interrupt()
        speech = self.vad.push(audio)
        params = self.motion.step(audio, speech)
        self._delay.append((audio, arrival, speech, timings.tick))
        self._step += 1
        if len(self._delay) <= self.lookahead_frames:
            return None
        out_audio, out_arrival, out_speech, timings.consumed = self._delay.popleft()
        index = self._step - 1 - self.lookahead_frames
        t = index / self.fps
        if self._incoming is not None:
            self._install_incoming(t)
        glasses = 0.0
        if self.edits is not None:
            numbers = self.edits.numbers(t)
            self.idle.sway, self.idle.blink_rate = numbers.head_motion, numbers.blink_rate
            if self._behaviour is not None:  # takes effect from the next frame the model samples
                self._behaviour.set_style(
                    motion=numbers.head_motion,
                    blink_per_min=self._behaviour.style_defaults["blink_per_min"] * numbers.blink_rate)
            glasses = numbers.glasses
        params = self.idle.apply(params, index, out_speech)
        params = self.presence.apply(params, index, self.agent_state)
        if self.edits is not None:
            params = MotionParams.from_vector(self.edits.apply(params.to_vector(), numbers, level_db(out_audio)))
            params = params.clipped()
        params = self._release(params, index)
        timings.audio_arrival = out_arrival
        timings.motion_done = time.monotonic()
        image = self._render(params, t, glasses, timings) if render else None
        timings.render_done = time.monotonic()
        return OutputFrame(index=index, image=image, audio=out_audio, speech=out_speech, params=params,
                           timings=timings)
