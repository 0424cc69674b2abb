"""Offline rendering: the same pipeline as `serve`, driven by a file instead of a clock.

The audio is decoded (any format PyAV reads), fed through the pipeline one frame
slice at a time, and the frames are muxed with the original audio into an MP4.
The pipeline's lookahead is flushed with silence at the end, so frame n shows
the audio at n/fps exactly and the frame count is round(duration × fps).
"""

from __future__ import annotations

import fractions
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avatar_rt.audio.ingress import SAMPLE_RATE
from avatar_rt.avatar.reference import Portrait
from avatar_rt.errors import AvatarRtError
from avatar_rt.motion.factory import make_motion_model
from avatar_rt.pipeline import FramePipeline, OutputFrame, frame_bounds


@dataclass(frozen=True)
class DecodedAudio:
    pcm16k: np.ndarray  # int16 mono at 16 kHz: what the pipeline hears
    original: np.ndarray  # float32 mono at `rate`: what goes into the MP4
    rate: int


def decode_audio(path: str | Path) -> DecodedAudio:
    """Decode any audio FFmpeg reads; every failure becomes one clear AvatarRtError."""
    try:
        return _decode_audio(path)
    except av.FFmpegError as exc:
        raise AvatarRtError(f"cannot decode audio file {path}: {exc}", code="bad_audio") from exc
    except OSError as exc:
        raise AvatarRtError(f"cannot open audio file {path}: {exc.strerror or exc}", code="bad_audio") from exc
    except (ValueError, TypeError, RuntimeError) as exc:  # PyAV's own checks on odd streams (no layout, no rate)
        raise AvatarRtError(f"cannot decode audio file {path}: {exc}", code="bad_audio") from exc


def _decode_audio(path: str | Path) -> DecodedAudio:
    """Any rate, channel count and sample format → float32 mono at the file's rate, and int16 mono at 16 kHz.

    The 16 kHz copy is resampled from fresh frames built from the mono copy, never from the decoder's
    frames: PyAV's resampler passes a frame that already has its target format through untouched and
    leaves it unusable for a second resampler (a 16 kHz mono s16 WAV failed with "Invalid argument").
    """
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AvatarRtError(f"{path} has no audio stream", code="bad_audio")
        stream = container.streams.audio[0]
        out_rate = stream.codec_context.sample_rate or 48_000
        to_mono = av.AudioResampler(format="flt", layout="mono", rate=out_rate)
        to16k = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        pcm16: list[np.ndarray] = []
        keep: list[np.ndarray] = []

        def to_16k(mono: np.ndarray | None) -> None:
            if mono is None:
                frames = to16k.resample(None)
            else:
                frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
                frame.sample_rate = out_rate
                frames = to16k.resample(frame)
            pcm16.extend(f.to_ndarray().reshape(-1).copy() for f in frames)

        def take(frames) -> None:
            for f in frames:
                mono = f.to_ndarray().reshape(-1).astype(np.float32, copy=True)
                # A float WAV can hold NaN, inf or values past full scale; they would poison the model and AAC.
                mono = np.clip(np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
                keep.append(mono)
                to_16k(mono)

        for frame in container.decode(stream):
            frame.pts = None
            take(to_mono.resample(frame))
        take(to_mono.resample(None))
        to_16k(None)
    if not pcm16 or not sum(len(p) for p in pcm16):
        raise AvatarRtError(f"{path} contains no audio samples", code="bad_audio")
    return DecodedAudio(np.concatenate(pcm16).astype(np.int16), np.concatenate(keep), out_rate)


def frame_count(pcm16k: np.ndarray, fps: float) -> int:
    """Video frames an offline render of this audio makes: round(duration × fps), at least one."""
    return max(1, int(round(len(pcm16k) / SAMPLE_RATE * fps)))


def render_frames(portrait: Portrait, pcm16k: np.ndarray, *, fps: float = 25.0, motion: str = "auto",
                  behaviour: str = "auto") -> Iterator[OutputFrame]:
    """The frames of `pcm16k` (int16 mono, 16 kHz) in order: frame n (`out.index`) shows the audio at n/fps.

    The pipeline's lookahead is flushed with silence, so exactly `frame_count(pcm16k, fps)` frames come out.
    """
    n_frames = frame_count(pcm16k, fps)
    pipeline = FramePipeline(portrait, fps, motion_model=make_motion_model(motion, fps, behaviour))
    total_steps = n_frames + pipeline.lookahead_frames
    _, end = frame_bounds(total_steps - 1, fps)
    padded = np.zeros(end, dtype=np.int16)
    padded[: min(len(pcm16k), end)] = pcm16k[:end]
    for step in range(total_steps):
        start, stop = frame_bounds(step, fps)
        out = pipeline.step(padded[start:stop])
        if out is not None:
            yield out


def render_to_mp4(portrait: Portrait, audio: DecodedAudio, out_path: str | Path, *, fps: float = 25.0,
                  progress: Callable[[int, int], None] | None = None, motion: str = "auto",
                  behaviour: str = "auto") -> int:
    """Render `audio` spoken by `portrait` to an H.264/AAC MP4; returns the number of video frames."""
    original, rate = audio.original, audio.rate
    n_frames = frame_count(audio.pcm16k, fps)

    out_path = Path(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(out_path), mode="w", format="mp4")
    except (OSError, av.FFmpegError) as exc:
        raise AvatarRtError(f"cannot write {out_path}: {getattr(exc, 'strerror', None) or exc}",
                            code="bad_output") from exc
    fps_frac = fractions.Fraction(fps).limit_denominator(1001)
    with container:
        vstream = container.add_stream("libx264", rate=fps_frac)
        vstream.width = vstream.height = portrait.size
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"crf": "20", "preset": "veryfast"}
        astream = container.add_stream("aac", rate=rate)
        astream.layout = "mono"
        written = 0
        for out in render_frames(portrait, audio.pcm16k, fps=fps, motion=motion, behaviour=behaviour):
            frame = av.VideoFrame.from_ndarray(out.image, format="bgr24")
            frame.pts = out.index
            frame.time_base = 1 / fps_frac
            for packet in vstream.encode(frame):
                container.mux(packet)
            written += 1
            if progress is not None:
                progress(written, n_frames)
        for packet in vstream.encode():
            container.mux(packet)
        # The original audio, untouched: frame n was made from the audio at n/fps.
        keep = original[: int(round(n_frames / fps * rate))]
        chunk = 1024
        for i in range(0, len(keep), chunk):
            aframe = av.AudioFrame.from_ndarray(keep[i:i + chunk].reshape(1, -1), format="fltp", layout="mono")
            aframe.sample_rate = rate
            aframe.pts = i
            aframe.time_base = fractions.Fraction(1, rate)
            for packet in astream.encode(aframe):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    return written
