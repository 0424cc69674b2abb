"""A real `avatar-rt serve` in a subprocess for the benchmarks, and its process numbers from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from avatar_rt.bench.server import spawn_serve  # noqa: E402  (one way to start a server and wait for it)


def start_server(work_dir: str | Path, *extra: str, env: dict | None = None,
                 tree: Path = REPO) -> tuple[subprocess.Popen, str]:
    """Serve with a fresh database in `work_dir` (its log beside it); returns the process and its URL.
    `tree`: the checkout whose code serves (another one for an old-vs-new comparison)."""
    env = dict(env or {})
    if tree != REPO:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    return spawn_serve(["--db", str(Path(work_dir) / "bench.sqlite3"), "--rate-sessions", "0,1", *extra],
                       Path(work_dir) / "server.log", cwd=tree, env=env, timeout_s=90)


def process_stats(pid: int) -> dict:
    """RSS (MB), threads and open file descriptors of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}
