"""A real `avatar-rt serve` in a subprocess for the benchmarks, and its process numbers from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(work_dir: str | Path, *extra: str, env: dict | None = None,
                 tree: Path = REPO) -> tuple[subprocess.Popen, str]:
    """Serve with a fresh database in `work_dir` (its log beside it); returns the process and its URL.
    `tree`: the checkout whose code serves (another one for an old-vs-new comparison)."""
    port = free_port()
    log = open(Path(work_dir) / "server.log", "w")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if tree != REPO:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "avatar_rt", "serve", "--port", str(port),
                             "--db", str(Path(work_dir) / "bench.sqlite3"), "--rate-sessions", "0,1", *extra],
                            cwd=tree, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {(Path(work_dir) / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start in 90 s")


def process_stats(pid: int) -> dict:
    """RSS (MB), threads and open file descriptors of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}
