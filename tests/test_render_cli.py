"""`avatar-rt render`: a WAV in, an MP4 out, exactly as a user runs it (a subprocess).

The MP4 is opened with PyAV and checked for what a user would see: the right
number of frames for the audio's length at the chosen frame rate (no frames lost
to the pipeline's lookahead, none invented), the right size, the voice present
and as long as the input, and a mouth that actually moves. Bad input must end
with one clear `avatar-rt:` line, not a traceback (invariant 5).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from avatar_rt.avatar.reference import DEFAULT_PORTRAIT, load_portrait
from conftest import REPO, espeak

SENTENCE = "Watch my mouth move when I talk, it follows every word."


def avatar_rt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatar_rt", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> tuple[Path, float]:
    """~3.3 s of espeak-ng speech as a 22.05 kHz WAV, and its exact duration."""
    path = tmp_path_factory.mktemp("cli") / "speech.wav"
    pcm, rate = espeak(SENTENCE, path)
    return path, len(pcm) / rate


@pytest.fixture(scope="module")
def mouth_box() -> list[int]:
    # The CLI's default avatar at its default size: the same analysis, so the same box.
    return load_portrait(DEFAULT_PORTRAIT, size=512).mouth_box()


@pytest.mark.parametrize("fps", [25, 30])
def test_render_writes_a_synced_mp4_with_a_moving_mouth(speech_wav, mouth_box, tmp_path, fps):
    wav, duration = speech_wav
    out = tmp_path / f"out_{fps}.mp4"
    args = ["render", "--audio", str(wav), "-o", str(out), "--no-progress"]
    if fps != 25:
        args += ["--fps", str(fps)]  # 25 is the default; the default path is exercised too
    proc = avatar_rt(*args)
    assert proc.returncode == 0, f"render failed:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert out.is_file() and out.stat().st_size > 10_000

    with av.open(str(out)) as container:
        assert container.streams.video and container.streams.audio, "the MP4 lacks a video or an audio stream"
        vstream = container.streams.video[0]
        assert (vstream.width, vstream.height) == (512, 512)
        assert abs(float(vstream.average_rate) - fps) < 0.01
        images = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with av.open(str(out)) as container:
        astream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(audio=0))
        audio_s = samples / astream.sample_rate

    print(f"render @ {fps} fps: {len(images)} frames for {duration:.3f} s of audio "
          f"(expected {round(duration * fps)}), audio track {audio_s:.3f} s")
    # The lookahead was flushed: every audio frame period has its video frame, no more.
    assert abs(len(images) - round(duration * fps)) <= 1
    assert all(img.shape == (512, 512, 3) for img in images)
    assert min(float(img.mean()) for img in images) > 20.0, "a black frame in the video"
    # The voice is all there (AAC adds at most a frame of padding).
    assert abs(audio_s - duration) <= 0.1

    # The mouth moves: the mouth region changes a lot between frames during the speech,
    # opening and closing, rather than sitting still (or only jittering with compression noise).
    x0, y0, x1, y1 = mouth_box
    crops = np.stack([img[y0:y1, x0:x1].astype(np.float64) for img in images])
    step_diff = np.abs(np.diff(crops, axis=0)).mean(axis=(1, 2, 3))
    from_first = np.abs(crops - crops[0]).mean(axis=(1, 2, 3))
    print(f"render @ {fps} fps: mouth change frame to frame: median {np.median(step_diff):.2f}, "
          f"max {step_diff.max():.2f}; from the first frame: max {from_first.max():.2f}")
    assert step_diff.max() > 5.0
    assert from_first.max() - from_first.min() > 10.0
    assert (step_diff > 2.0).sum() >= 10, "the mouth moved only a few times in a whole sentence"


# --------------------------------------------------------------------------- bad input


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("avatar-rt:")]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    d = tmp_path_factory.mktemp("bad")
    text = d / "notes.wav"  # a text file with an audio name: the extension must not be trusted
    text.write_text("this is not audio, just some words in a file\n" * 20)
    results = {}
    for name, path in (("missing", d / "does-not-exist.wav"), ("text", text)):
        results[name] = (path, avatar_rt("render", "--audio", str(path), "-o", str(d / f"{name}.mp4"),
                                         "--no-progress"))
    return results


@pytest.mark.parametrize("case", ["missing", "text"])
def test_bad_audio_exits_nonzero_with_one_clear_line(bad_inputs, case):
    path, proc = bad_inputs[case]
    print(f"{case}: rc={proc.returncode}, stderr tail: {proc.stderr.strip().splitlines()[-1:]}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0], "the message should say which file is wrong"
    # It is the last thing printed, so it is what the user reads.
    assert proc.stderr.strip().splitlines()[-1] == lines[0]
    assert not (path.parent / f"{case}.mp4").exists(), "a broken MP4 was left behind"


@pytest.mark.parametrize("case", ["missing", "text"])
def test_bad_audio_stderr_is_only_the_error_line(bad_inputs, case):
    """A user who mistypes the audio path should see just the error, not five lines of TFLite logging."""
    _, proc = bad_inputs[case]
    assert proc.stderr.strip().splitlines() == error_lines(proc.stderr), proc.stderr


# --------------------------------------------------------------------------- failures that once were tracebacks
# Each must end with one `avatar-rt:` line and status 2.


def corrupt_mp3(wav: Path, out: Path) -> Path:
    """An MP3 whose header is fine (av.open succeeds) but whose frames are garbage from byte 2000 on."""
    import wave

    with wave.open(str(wav)) as w:
        pcm, rate = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16), w.getframerate()
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        for i in range(0, len(pcm), 1152):
            frame = av.AudioFrame.from_ndarray(pcm[i:i + 1152].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = bytearray(out.read_bytes())
    rng = np.random.default_rng(1)
    data[2000::7] = rng.integers(0, 256, size=len(data[2000::7]), dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def assert_clean_failure(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert proc.returncode == 2
    assert len(error_lines(proc.stderr)) == 1


def test_missing_avatar_is_a_clear_error(speech_wav, tmp_path):
    wav, _ = speech_wav
    assert_clean_failure(avatar_rt("render", "--audio", str(wav), "--avatar", str(tmp_path / "nope.jpg"),
                                   "-o", str(tmp_path / "o.mp4"), "--no-progress"))


def test_audio_corrupt_after_its_header_is_a_clear_error(speech_wav, tmp_path):
    wav, _ = speech_wav
    bad = corrupt_mp3(wav, tmp_path / "corrupt.mp3")
    assert_clean_failure(avatar_rt("render", "--audio", str(bad), "-o", str(tmp_path / "o.mp4"), "--no-progress"))


def test_unwritable_output_is_a_clear_error(speech_wav, tmp_path):
    wav, _ = speech_wav
    assert_clean_failure(avatar_rt("render", "--audio", str(wav), "-o", "/proc/avatar-rt-test/o.mp4",
                                   "--no-progress"))
