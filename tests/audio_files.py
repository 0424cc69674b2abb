"""Audio files of every common kind, written with PyAV's real encoders (no fixtures on disk).

`write_tone` makes a file holding a pure tone, so a decoder's output can be checked for what went in:
its length and its pitch. Used by the render CLI tests and by the audio-file fuzzing.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

# (container, codec, sample format written, codec's allowed rates or None for any)
KINDS: dict[str, tuple[str, str, str, tuple[int, ...] | None]] = {
    "wav_s16": ("wav", "pcm_s16le", "s16", None),
    "wav_s32": ("wav", "pcm_s32le", "s32", None),
    "wav_float": ("wav", "pcm_f32le", "flt", None),
    "mp3": ("mp3", "libmp3lame", "fltp", (8000, 16000, 22050, 24000, 44100, 48000)),
    "opus": ("ogg", "libopus", "flt", (8000, 16000, 24000, 48000)),
    "flac": ("flac", "flac", "s16", None),
}
SUFFIX = {"wav": ".wav", "mp3": ".mp3", "ogg": ".ogg", "flac": ".flac"}
RATES = (8000, 16000, 22050, 24000, 44100, 48000)


def tone(rate: int, seconds: float, channels: int, hz: float = 440.0) -> np.ndarray:
    """float32 (channels, n) in [-0.5, 0.5]: the same tone on every channel."""
    t = np.arange(int(round(rate * seconds))) / rate
    mono = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.repeat(mono[None, :], channels, axis=0)


def write_audio(path: Path, samples: np.ndarray, rate: int, kind: str) -> Path:
    """Write float32 (channels, n) samples as `kind` (a key of KINDS) at `rate`."""
    fmt, codec, sample_fmt, _ = KINDS[kind]
    channels = samples.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        if codec == "libopus":
            stream.bit_rate = 64000
        interleaved = samples.T.reshape(1, -1)  # packed: L R L R ...
        block = 960
        for i in range(0, samples.shape[1], block):
            chunk = np.ascontiguousarray(interleaved[:, i * channels:(i + block) * channels])
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=layout)
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_tone(directory: Path, kind: str, rate: int, channels: int, seconds: float = 1.0) -> Path:
    path = directory / f"tone_{kind}_{rate}_{channels}ch{SUFFIX[KINDS[kind][0]]}"
    return write_audio(path, tone(rate, seconds, channels), rate, kind)


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1.0 / rate)[int(np.argmax(spectrum))])
