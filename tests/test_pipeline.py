"""The frame pipeline on one media clock: audio slice in → (frame, its own audio) out.

What a viewer would notice if these broke: lips ahead of or behind the voice
(invariant 1), a mouth that moves in silence or stays shut during speech, a
frozen or black picture when nobody talks (invariant 3), and one bad slice
taking the session down (invariant 5). All real components: the bundled
portrait analysed by MediaPipe, webrtcvad, the CPU warp renderer, espeak-ng speech.
"""

from __future__ import annotations

import numpy as np
import pytest

from avatar_rt.audio.ingress import SAMPLE_RATE
from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, Portrait, load_portrait
from avatar_rt.motion.idle import IdleMotion
from avatar_rt.motion.params import MotionParams
from avatar_rt.pipeline import FramePipeline, OutputFrame, frame_bounds
from avatar_rt.render.renderer import PortraitRenderer
from avatar_rt.rig.landmark_rig import LandmarkRig
from conftest import espeak, resample


@pytest.fixture(scope="module")
def portrait() -> Portrait:
    # Face Mesh analysis takes ~0.5 s; every test here animates the same portrait.
    return load_portrait(DEFAULT_PORTRAIT)


def run(pipeline: FramePipeline, pcm: np.ndarray, *, render: bool = True) -> tuple[list[OutputFrame], int]:
    """Feed `pcm` slice by slice on the media clock; returns the frames out and how many steps were None."""
    frames, nones, step = [], 0, 0
    while True:
        start, end = frame_bounds(step, pipeline.fps)
        if end > len(pcm):
            return frames, nones
        assert pipeline.samples_for_step() == end - start
        out = pipeline.step(pcm[start:end], render=render)
        if out is None:
            nones += 1
        else:
            frames.append(out)
        step += 1


def mouth(image: np.ndarray, box: list[int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1].astype(np.float64)


# --------------------------------------------------------------------------- frame_bounds


@pytest.mark.parametrize("fps,sizes", [(25.0, {640}), (30.0, {533, 534})])
def test_frame_bounds_tile_the_timeline(fps, sizes):
    n = int(fps) * 60  # a minute of frames
    bounds = [frame_bounds(k, fps) for k in range(n)]
    assert bounds[0][0] == 0
    # No gap and no overlap: each frame starts where the previous ended.
    assert all(bounds[k][1] == bounds[k + 1][0] for k in range(n - 1))
    assert {e - s for s, e in bounds} == sizes
    # Every second of video covers exactly one second of audio.
    for sec in range(60):
        k = sec * int(fps)
        assert sum(e - s for s, e in bounds[k:k + int(fps)]) == SAMPLE_RATE
    assert bounds[-1][1] == 60 * SAMPLE_RATE


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_frame_bounds_do_not_drift_over_an_hour(fps):
    """Invariant 1: an hour in, frame n still starts at exactly n·sr/fps (integer arithmetic, no drift)."""
    n = int(3600 * fps)
    assert frame_bounds(n, fps)[0] == 3600 * SAMPLE_RATE
    s, e = frame_bounds(n + 7, fps)
    assert s == (n + 7) * SAMPLE_RATE // int(fps) and e == (n + 8) * SAMPLE_RATE // int(fps)


# --------------------------------------------------------------------------- one clock


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_each_frame_comes_out_with_exactly_its_own_audio_slice(portrait, fps):
    """Invariant 1: whatever the lookahead, the audio leaving with frame k is input slice k."""
    pcm = np.arange(2 * SAMPLE_RATE, dtype=np.int16)  # a ramp: every slice is distinct
    pipeline = FramePipeline(portrait, fps)
    frames, nones = run(pipeline, pcm, render=False)

    assert pipeline.lookahead_frames >= 1
    assert nones == pipeline.lookahead_frames, "the first lookahead steps must only fill the delay line"
    assert [f.index for f in frames] == list(range(len(frames)))
    assert len(frames) == int(2 * fps) - pipeline.lookahead_frames
    for f in frames:
        start, end = frame_bounds(f.index, fps)
        np.testing.assert_array_equal(f.audio, pcm[start:end], err_msg=f"frame {f.index} carries the wrong audio")


# --------------------------------------------------------------------------- mouth follows speech


@pytest.fixture(scope="module")
def padded_sentence(tmp_path_factory) -> tuple[np.ndarray, float, float]:
    """1 s silence, an espeak sentence, 1 s silence, at 16 kHz; with the speech span in seconds."""
    pcm, rate = espeak("Hello there, I am your avatar, and I speak whatever you say.",
                       tmp_path_factory.mktemp("pipe") / "s.wav")
    speech = resample(pcm, rate, SAMPLE_RATE)
    loud = np.nonzero(np.abs(speech.astype(np.int32)) > 300)[0]
    silence = np.zeros(SAMPLE_RATE, dtype=np.int16)
    return np.concatenate([silence, speech, silence]), 1.0 + loud[0] / SAMPLE_RATE, 1.0 + loud[-1] / SAMPLE_RATE


def test_mouth_follows_speech_and_rests_in_silence(portrait, padded_sentence):
    pcm, t_on, t_off = padded_sentence
    fps = 25.0
    # No head sway, so the mouth region at rest can be compared with the reference
    # exactly; the articulation (jaw) path is the shipped one.
    pipeline = FramePipeline(portrait, fps, idle=IdleMotion(fps, sway=0.0))
    frames, _ = run(pipeline, pcm)
    jaw = np.array([f.params.jaw_open for f in frames])
    on, off = int(np.ceil(t_on * fps)), int(t_off * fps)
    print(f"pipeline: speech frames {on}..{off}, jaw mean during speech {jaw[on:off + 1].mean():.3f}, "
          f"max in leading silence {jaw[:on - 1].max():.4f}")

    assert jaw[on:off + 1].mean() > 0.3, "the mouth barely opens during speech"
    assert jaw[:on - 1].max() < 0.05, "the mouth moves before anyone speaks"
    # It closes again after the sentence (hangover + release), not hanging open.
    assert jaw[off + 15:].max() < 0.05
    assert np.all((jaw >= 0) & (jaw <= 1))

    box = portrait.mouth_box()
    ref = mouth(portrait.image, box)
    diff = np.array([np.abs(mouth(f.image, box) - ref).mean() for f in frames])
    print(f"pipeline: mouth-box diff from reference: rest {diff[:on - 1].max():.2f}, "
          f"speech max {diff[on:off + 1].max():.2f}, tail {diff[off + 15:].max():.2f}")
    # At rest the mouth is the reference's, pixel for pixel…
    assert diff[:on - 1].max() == 0.0
    # …during speech it visibly opens (a cavity appears: tens of grey levels on average)…
    assert diff[on:off + 1].max() > 15.0
    assert (diff[on:off + 1] > 5.0).mean() > 0.5, "the mouth is open for less than half of the sentence"
    # …and after the sentence it is back to (almost) the reference.
    assert diff[off + 15:].max() < 1.0


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_jaw_is_in_sync_with_the_audio_it_leaves_with(portrait, padded_sentence, fps):
    """Lip sync as a viewer sees it: the jaw tracks the loudness of the audio paired with the
    same frame best at lag 0, not a frame early or late (a lookahead/delay-line mismatch would shift it)."""
    pcm, _, _ = padded_sentence
    frames, _ = run(FramePipeline(portrait, fps), pcm, render=False)
    jaw = np.array([f.params.jaw_open for f in frames])
    level_db = np.array([20 * np.log10(np.sqrt(np.mean(f.audio.astype(np.float64) ** 2)) + 1) for f in frames])
    corr = {}
    for lag in range(-3, 4):  # jaw[k + lag] against level[k]
        a = jaw[max(0, lag):len(jaw) + min(0, lag)]
        b = level_db[max(0, -lag):len(level_db) - max(0, lag)]
        corr[lag] = float(np.corrcoef(a, b)[0, 1])
    by_lag = ", ".join(f"{k}: {v:.2f}" for k, v in corr.items())
    print(f"pipeline @ {fps:g} fps: jaw/loudness correlation by lag {by_lag}")
    assert max(corr, key=corr.get) == 0
    assert corr[0] > 0.8


# --------------------------------------------------------------------------- video never stops


def test_silence_keeps_rendering_blinking_and_breathing(portrait):
    """Invariant 3: 10 s of nothing still gives a frame every tick, never black, never frozen."""
    fps = 25.0
    pipeline = FramePipeline(portrait, fps)
    frames, nones = run(pipeline, np.zeros(10 * SAMPLE_RATE, dtype=np.int16))

    assert nones == pipeline.lookahead_frames
    assert len(frames) == 250 - pipeline.lookahead_frames
    means = []
    for f in frames:
        assert f.image is not None, f"frame {f.index} was not rendered"
        assert f.image.shape == (portrait.size, portrait.size, 3) and f.image.dtype == np.uint8
        means.append(float(f.image.mean()))
        assert not f.speech
    assert min(means) > 20.0, "a (nearly) black frame was produced"

    blink = np.array([f.params.blink_l for f in frames])
    print(f"pipeline: {np.sum(np.diff((blink > 0.5).astype(int)) == 1)} blinks in 10 s")
    assert blink.max() > 0.5, "no blink in 10 s of idle"
    # The blink is visible: the eye region of the most-closed frame differs from an open-eyed one.
    closed = int(np.argmax(blink))
    open_frames = np.nonzero(blink == 0.0)[0]
    open_ = int(open_frames[np.argmin(np.abs(open_frames - closed))])  # nearest, so sway barely differs
    x0, y0, x1, y1 = portrait.face_box()
    eyes = (slice(y0, (y0 + y1) // 2), slice(x0, x1))
    assert np.abs(frames[closed].image[eyes].astype(int) - frames[open_].image[eyes].astype(int)).mean() > 1.0

    # Breathing / sway: the head is not a still image even with the eyes open.
    still = [f for f, b in zip(frames, blink) if b == 0.0]
    drift = np.abs(still[0].image.astype(int) - still[-1].image.astype(int)).mean()
    assert drift > 0.1, "the idle avatar is frozen"


# --------------------------------------------------------------------------- robustness


def test_full_scale_clipped_audio_is_rendered_normally(portrait):
    """A clipping microphone (full-scale square wave) must not break the motion or the image."""
    fps = 25.0
    t = np.arange(2 * SAMPLE_RATE)
    square = np.where((t // 40) % 2 == 0, 32767, -32768).astype(np.int16)  # 200 Hz, rail to rail
    pipeline = FramePipeline(portrait, fps)
    frames, _ = run(pipeline, np.concatenate([square, np.zeros(SAMPLE_RATE, dtype=np.int16)]))

    assert len(frames) == 75 - pipeline.lookahead_frames
    for f in frames:
        vec = f.params.to_vector()
        assert np.all(np.isfinite(vec)), f"frame {f.index}: non-finite motion {vec}"
        assert 0.0 <= f.params.jaw_open <= 1.0
        assert f.image is not None and f.image.mean() > 20.0


@pytest.mark.parametrize("fps,expected", [(25.0, 640), (30.0, 533)])
def test_wrong_length_slice_is_refused_clearly_and_harms_nothing(portrait, fps, expected):
    pipeline = FramePipeline(portrait, fps)
    for bad in (expected - 1, expected + 1, 0):
        with pytest.raises(ValueError, match=rf"needs {expected} samples, got {bad}"):
            pipeline.step(np.zeros(bad, dtype=np.int16))
    # The refused slices did not advance the clock: the session carries on from step 0.
    pcm = np.arange(SAMPLE_RATE, dtype=np.int16)
    frames, nones = run(pipeline, pcm, render=False)
    assert nones == pipeline.lookahead_frames
    assert frames[0].index == 0
    np.testing.assert_array_equal(frames[0].audio, pcm[:expected])


# --------------------------------------------------------------------------- renderer identity


def test_renderer_at_rest_returns_the_reference_exactly(portrait):
    """At rest nothing may be resampled: the output is the portrait bit for bit (no blur, no seam)."""
    pose = LandmarkRig(portrait).pose(MotionParams())
    # The rig's pivot round trip leaves float32 rounding (~1e-5 px): far below what the warp acts on.
    np.testing.assert_allclose(pose.points, portrait.landmarks[:, :2], atol=1e-3)
    out = PortraitRenderer(portrait).render(pose)
    assert out.shape == portrait.image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, portrait.image)
    assert out is not portrait.image  # a fresh frame: the encoder may not scribble on the reference


def _quiet_frames(portrait, state: str | None, seconds: float = 8.0) -> list[OutputFrame]:
    pipeline = FramePipeline(portrait, 25.0, renderer=PortraitRenderer(portrait))
    pipeline.agent_state = state
    frames, _ = run(pipeline, np.zeros(int(seconds * SAMPLE_RATE), np.int16), render=False)
    return frames[25:]  # after the state's fade-in


def test_between_replies_the_face_listens_and_thinking_looks_different(portrait):
    """An agent's listening face nods and looks at the viewer; thinking looks up and aside; neither freezes."""
    idle = _quiet_frames(portrait, None)
    listening = _quiet_frames(portrait, "listening")
    thinking = _quiet_frames(portrait, "thinking")
    series = lambda frames, name: np.array([getattr(f.params, name) for f in frames])  # noqa: E731
    # Nods: the listening head's pitch swings more than idle sway alone (small nods of ~2.5°).
    assert np.ptp(series(listening, "head_pitch")) > np.ptp(series(idle, "head_pitch")) + 0.03
    # Eyes on the viewer while listening, averted up while thinking.
    assert np.abs(series(listening, "gaze_x")).mean() < 0.1 and np.abs(series(listening, "gaze_y")).mean() < 0.1
    assert series(thinking, "gaze_y").mean() < -0.35 and np.abs(series(thinking, "gaze_x")).mean() > 0.35
    assert series(thinking, "brow_furrow").mean() > 0.2 > series(listening, "brow_furrow").mean()
    # Not frozen: the head moves frame to frame in every state, and the mouth stays shut in silence.
    for frames in (listening, thinking):
        assert np.abs(np.diff(series(frames, "head_pitch"))).max() > 1e-4
        assert series(frames, "jaw_open").max() < 0.05
