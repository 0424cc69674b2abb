"""`avatar-rt render --audio` takes every common speech file: 8–48 kHz, mono or stereo, s16/s32/float WAV,
MP3, Ogg/Opus and FLAC (issue 16: a plain 16 kHz mono s16 WAV once failed with "Invalid argument").

Each file is written here with PyAV's real encoders holding a 440 Hz tone, decoded the way `render` decodes
it, and checked for what went in: its length and its pitch. A few go all the way through the CLI to an MP4.
Broken files end with one clear `avatar-rt:` line and a non-zero status.
"""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pytest

from audio_files import KINDS, RATES, dominant_hz, write_audio, write_tone
from avatar_rt.errors import AvatarRtError
from avatar_rt.offline import decode_audio
from conftest import REPO

CASES = [(kind, rate, channels) for kind, (_, _, _, rates) in KINDS.items() for rate in RATES
         if rates is None or rate in rates for channels in (1, 2)]


@pytest.mark.parametrize("kind,rate,channels", CASES, ids=[f"{k}-{r}-{c}ch" for k, r, c in CASES])
def test_every_common_format_decodes_to_what_went_in(tmp_path, kind, rate, channels):
    path = write_tone(tmp_path, kind, rate, channels, seconds=1.0)
    audio = decode_audio(path)
    seconds = len(audio.pcm16k) / 16000
    # Lossy codecs add their priming/padding (MP3 ≤ ~50 ms, Opus 6.5 ms): never more than 60 ms.
    assert abs(seconds - 1.0) <= 0.06, f"{path.name}: decoded {seconds:.3f} s of 1.000 s"
    assert abs(dominant_hz(audio.pcm16k, 16000) - 440.0) < 3.0
    level = np.sqrt(np.mean(audio.pcm16k.astype(np.float64) ** 2)) / 32768
    assert 0.2 < level < 0.6, f"{path.name}: level {level:.3f} (tone at 0.354 RMS)"
    assert len(audio.original) / audio.rate == pytest.approx(seconds, abs=0.01)
    assert audio.original.dtype == np.float32 and np.all(np.abs(audio.original) <= 1.0)


def test_float_wav_with_nan_and_overs_is_cleaned(tmp_path):
    samples = np.full((1, 16000), 0.25, dtype=np.float32)
    samples[0, 100:200] = np.nan
    samples[0, 300:400] = np.inf
    samples[0, 500:600] = 7.0
    audio = decode_audio(write_audio(tmp_path / "odd.wav", samples, 16000, "wav_float"))
    assert np.all(np.isfinite(audio.original)) and np.abs(audio.original).max() <= 1.0
    assert len(audio.pcm16k) == 16000


def avatar_rt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatar_rt", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONUNBUFFERED": "1"})


# The reported file, and one of each container: each rendered to an MP4 by the real CLI.
RENDERED = [("wav_s16", 16000, 1), ("wav_float", 48000, 2), ("mp3", 22050, 1), ("opus", 24000, 2),
            ("flac", 44100, 2)]


@pytest.mark.slow
@pytest.mark.parametrize("kind,rate,channels", RENDERED, ids=[f"{k}-{r}-{c}ch" for k, r, c in RENDERED])
def test_render_cli_makes_an_mp4_from_each_container(tmp_path, kind, rate, channels):
    wav = write_tone(tmp_path, kind, rate, channels, seconds=1.2)
    out = tmp_path / "out.mp4"
    proc = avatar_rt("render", "--audio", str(wav), "-o", str(out), "--no-progress", "--size", "256")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with av.open(str(out)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert abs(frames - 30) <= 2, f"{frames} frames for 1.2 s at 25 fps"


def broken_files(tmp_path):
    good = write_tone(tmp_path, "wav_s16", 16000, 1).read_bytes()
    mp3 = write_tone(tmp_path, "mp3", 16000, 1).read_bytes()
    return {
        "empty": b"",
        "header_only": good[:44],
        "truncated_header": good[:20],
        "riff_garbage": b"RIFF" + os.urandom(400),
        "random": np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "mp3_cut": mp3[: len(mp3) // 3] + b"\x00" * 10,
        "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    }


def test_broken_files_are_one_clear_error_in_process(tmp_path):
    for name, data in broken_files(tmp_path).items():
        path = tmp_path / f"{name}.wav"
        path.write_bytes(data)
        try:
            audio = decode_audio(path)
        except AvatarRtError as exc:
            assert exc.code == "bad_audio" and str(path) in exc.message, (name, exc.message)
        else:  # a damaged tail may still hold some decodable audio: that is a success, not a crash
            assert name in ("mp3_cut", "riff_garbage") and len(audio.pcm16k) > 0, name


@pytest.mark.parametrize("name", ["empty", "header_only", "random"])
def test_broken_file_through_the_cli_exits_2_with_one_line(tmp_path, name):
    path = tmp_path / f"{name}.wav"
    path.write_bytes(broken_files(tmp_path)[name])
    proc = avatar_rt("render", "--audio", str(path), "-o", str(tmp_path / "o.mp4"), "--no-progress")
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("avatar-rt:")]
    assert len(lines) == 1 and str(path) in lines[0], proc.stderr
    assert not (tmp_path / "o.mp4").exists()
