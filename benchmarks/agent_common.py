"""What the agent benchmarks share: espeak-ng replies, the real server in this process, the report."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from machine import machine  # benchmarks/machine.py, beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def tts(text: str) -> tuple[np.ndarray, int]:
    """espeak-ng's PCM16 and its rate (22.05 kHz), as a TTS hands it to an agent."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy(), w.getframerate()


@contextlib.asynccontextmanager
async def serve_in_process() -> AsyncIterator[tuple[object, str]]:
    """The real app (bundled portrait, default motion model) on a free port; yields (app, base URL)."""
    from aiohttp import web

    from avatar_rt.server.app import ServerConfig, create_app

    with tempfile.TemporaryDirectory() as d:
        app = create_app(ServerConfig(avatar=REPO / "avatar_rt" / "assets" / "astronaut_512.jpg",
                                      db=Path(d) / "db.sqlite3"))
        runner = web.AppRunner(app)
        await runner.setup()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield app, f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


def report(name: str, result: dict, json_path: Path | None) -> None:
    out = {"machine": machine(), "benchmark": name, **result}
    print(json.dumps(out, indent=2))
    if json_path:
        json_path.write_text(json.dumps(out, indent=2) + "\n")
