"""What a user sees at startup: a backend that cannot run here, a missing or corrupt model, `engines build` and
scripts/gpu_check.sh without a GPU — each one line naming the cause and a non-zero exit, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave

import numpy as np
import onnxruntime as ort
import pytest

from avatar_rt.engines.gpu import no_gpu_reason
from conftest import REPO

NO_GPU = no_gpu_reason()
needs_no_gpu = pytest.mark.skipif(NO_GPU is None, reason="this machine has an NVIDIA GPU: the no-GPU path is moot")


def avatar_rt(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatar_rt", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def last_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    return path


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider installed")
def test_serve_with_an_unavailable_backend_stops_with_its_name(tmp_path):
    proc = avatar_rt("serve", "--backend", "cuda", "--port", "1", "--db", str(tmp_path / "db.sqlite3"))
    assert proc.returncode == 2
    assert last_line(proc) == ("avatar-rt: backend cuda is not available: onnxruntime "
                               f"{ort.__version__} has no CUDAExecutionProvider (install the gpu extra: "
                               "onnxruntime-gpu)")


def _engines_copy(tmp_path, damage: str) -> dict:
    copy = tmp_path / "engines"
    shutil.copytree(REPO / "engines", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    if damage == "corrupt":
        model = copy / manifest["engines"]["lipsync_stage_a"]["file"]
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0x01
        model.write_bytes(bytes(data))
    else:
        (copy / manifest["engines"]["lipsync_stage_b"]["file"]).unlink()
    return {"AVATAR_RT_ENGINES_DIR": str(copy)}


def test_render_with_a_corrupt_model_stops_naming_it(tmp_path, wav):
    proc = avatar_rt("render", "--backend", "cpu", "--audio", str(wav), "-o", str(tmp_path / "out.mp4"),
                     env=_engines_copy(tmp_path, "corrupt"))
    assert proc.returncode == 2
    line = last_line(proc)
    assert line.startswith("avatar-rt: model lipsync_stage_a cannot be used: engine 'lipsync_stage_a': ")
    assert "sha256" in line and "corrupt or stale" in line
    assert not (tmp_path / "out.mp4").exists()


def test_render_with_a_missing_model_stops_naming_it(tmp_path, wav):
    proc = avatar_rt("render", "--audio", str(wav), "-o", str(tmp_path / "out.mp4"),
                     env=_engines_copy(tmp_path, "missing"))
    assert proc.returncode == 2
    line = last_line(proc)
    assert line.startswith("avatar-rt: model lipsync_stage_b cannot be used: engine 'lipsync_stage_b': file ")
    assert "is missing" in line


@needs_no_gpu
def test_engines_build_without_a_gpu_says_so():
    proc = avatar_rt("engines", "build")
    assert proc.returncode == 2
    assert last_line(proc).startswith(f"avatar-rt engines build: no NVIDIA GPU here ({NO_GPU})")


def test_bench_backend_is_for_the_server_it_starts():
    proc = avatar_rt("bench", "--url", "http://127.0.0.1:1", "--backend", "cpu")
    assert proc.returncode == 2
    assert "--backend chooses the backend of the server bench starts" in last_line(proc)


@needs_no_gpu
def test_gpu_check_script_stops_with_a_clear_message_here():
    proc = subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert last_line(proc).startswith("gpu_check: no NVIDIA GPU on this machine")
