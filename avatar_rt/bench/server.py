"""The server under test: one started locally (the default), or any URL; its metrics and its CPU and memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from avatar_rt.bench.client import BenchError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_serve(args: list[str], log_path: Path, *, cwd: Path | None = None, env: dict | None = None,
                timeout_s: float = 120.0, python: str | None = None,
                port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`PYTHON -m avatar_rt serve --port PORT ARGS` (this interpreter, a free port by default) with its output in
    `log_path`, once /v1/health answers 200 (or 401: up, and wants a token); returns the process and its URL. A
    server that exits or is not healthy within `timeout_s` is a BenchError carrying the end of its log (the process
    is killed). `python -m` puts the working directory first on sys.path: `cwd` chooses which checkout serves."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "w")
    process = subprocess.Popen([python or sys.executable, "-m", "avatar_rt", "serve", "--port", str(port), *args],
                               stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    log.close()  # the child holds its own copy
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited during startup:\n{Path(log_path).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/v1/health", timeout=1) as resp:
                if resp.status == 200:
                    return process, url
        except urllib.error.HTTPError as err:
            if err.code == 401:
                return process, url
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise BenchError(f"the server was not healthy after {timeout_s:g} s:\n{Path(log_path).read_text()[-2000:]}")


class LocalServer:
    """`avatar-rt serve` in a subprocess on a free port, with a throwaway database."""

    def __init__(self, max_sessions: int, extra_args: list[str] | None = None, timeout_s: float = 120.0,
                 cwd: Path | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="avatar-rt-bench-")
        self.log_path = Path(self._dir.name) / "server.log"
        try:
            self.process, self.url = spawn_serve(
                ["--db", str(Path(self._dir.name) / "bench.sqlite3"), "--max-sessions", str(max_sessions),
                 *(extra_args or [])], self.log_path, cwd=cwd, timeout_s=timeout_s)
        except BenchError:
            self._dir.cleanup()
            raise
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._dir.cleanup()


def check_reachable(url: str, timeout_s: float = 5.0) -> dict:
    """GET /v1/health; a BenchError that says what is wrong when the server cannot be used."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/health", timeout=timeout_s) as resp:
            import json

            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise BenchError(f"the server at {url} answered /v1/health with HTTP {exc.code}; "
                         "is this an avatar-rt server?") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BenchError(f"cannot reach the server at {url}: {reason}. Start one with `avatar-rt serve`, "
                         "or leave out --url to let the bench start its own.") from exc
    except ValueError as exc:
        raise BenchError(f"the server at {url} did not answer /v1/health with JSON; is this an avatar-rt "
                         "server?") from exc


def proc_stats(pid: int) -> dict | None:
    """CPU seconds (user + system, all threads) and RSS of a local process, as /v1/metrics' "process"."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return {"cpu_s": (int(fields[11]) + int(fields[12])) / ticks,
            "rss_mb": round(rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1),
            "monotonic_s": time.monotonic()}


def process_usage(metrics: dict | None, pid: int | None) -> dict | None:
    """The server's CPU and memory reading: from /proc when its pid is known (local), else its metrics."""
    if pid is not None:
        stats = proc_stats(pid)
        if stats is not None:
            return stats
    return (metrics or {}).get("process")


def cores_between(before: dict | None, after: dict | None) -> float | None:
    if not before or not after or after["monotonic_s"] <= before["monotonic_s"]:
        return None
    return (after["cpu_s"] - before["cpu_s"]) / (after["monotonic_s"] - before["monotonic_s"])
