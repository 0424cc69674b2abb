"""Does uploading portraits grow the server? 50 uploads in a row against a real `avatar-rt serve`,
its resident memory (VmRSS) read from /proc before and after.

Three cases, each in a fresh server: the same photo 50 times (the content hash gives the same id
back), 50 different photos (crops of the test portraits, each a new avatar), and 50 photos the
server refuses (no face). The baseline is taken after one warm-up upload, list and thumbnail; the
growth is printed from there and from after the first of the 50 (what a kind of upload loads once,
e.g. the first new avatar kept prepared, ~7 MB, against what each one leaves behind).

    .venv/bin/python benchmarks/upload_memory.py [--uploads 50] [--case same,distinct,refused]

Prints one line per case and writes benchmarks/results/upload_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from machine import machine  # benchmarks/machine.py, beside this script

REPO = Path(__file__).resolve().parents[1]
PORTRAITS = sorted((REPO / "tests" / "data" / "portraits").glob("*.jpg")) + [REPO / "avatar_rt" / "assets" / "astronaut_512.jpg"]
LIMIT_MB = 20.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def post(url: str, data: bytes) -> int:
    req = urllib.request.Request(url + "/v1/avatars", data=data, method="POST", headers={"Content-Type": "image/jpeg"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        err.read()
        return err.code


def get(url: str, path: str) -> bytes:
    with urllib.request.urlopen(url + path, timeout=60) as resp:
        return resp.read()


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def photos(case: str, n: int) -> list[bytes]:
    """The n uploads of a case (and a warm-up photo that is none of them, first)."""
    images = [cv2.imread(str(p)) for p in PORTRAITS]
    warm = _jpeg(images[0][4:, 4:])
    if case == "same":
        return [warm] + [_jpeg(images[1])] * n
    if case == "refused":  # the sky beside the astronaut: no face, a distinct photo each time
        sky = images[-1][0:200, 380:512]
        return [warm] + [_jpeg(cv2.resize(sky[i % 7:, :], (300 + i, 450))) for i in range(n)]
    out = [warm]
    for i in range(n):  # a few pixels' crop of one of the five portraits: a new photo, the same face
        img = images[i % len(images)]
        k = 1 + i // len(images)
        out.append(_jpeg(img[2 * k:, k:img.shape[1] - k]))
    return out


def run_case(case: str, n: int) -> dict:
    uploads = photos(case, n)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "avatar_rt", "serve", "--port", str(port), "--db", f"{tmp}/db.sqlite3"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        try:
            deadline = time.time() + 120
            while True:
                try:
                    get(url, "/v1/health")
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError("the server did not start")
                    time.sleep(0.3)
            started = rss_mb(proc.pid)
            post(url, uploads[0])
            listing = json.loads(get(url, "/v1/avatars"))
            for a in listing["avatars"]:
                get(url, a["thumbnail"])
            baseline = rss_mb(proc.pid)
            statuses: dict[int, int] = {}
            t0 = time.perf_counter()
            for i, data in enumerate(uploads[1:], 1):
                status = post(url, data)
                statuses[status] = statuses.get(status, 0) + 1
                if i == 1:
                    after_first = rss_mb(proc.pid)
                print(f"\r  {case}: upload {i}/{n} ({status}), RSS {rss_mb(proc.pid):.1f} MB", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            elapsed = time.perf_counter() - t0
            listing = json.loads(get(url, "/v1/avatars?limit=500"))
            after = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    return {"case": case, "uploads": n, "statuses": statuses, "avatars_listed": listing["total"],
            "rss_started_mb": round(started, 1), "rss_baseline_mb": round(baseline, 1), "rss_after_mb": round(after, 1),
            "growth_mb": round(after - baseline, 1), "growth_after_first_mb": round(after - after_first, 1),
            "seconds_per_upload": round(elapsed / n, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--case", default="same,distinct,refused", help="comma-separated: same, distinct, refused")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "upload_memory.json")
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_1min']}, {info['date']}")
    results = []
    for case in args.case.split(","):
        r = run_case(case.strip(), args.uploads)
        results.append(r)
        verdict = "ok" if r["growth_mb"] <= LIMIT_MB else "OVER"
        print(f"{r['case']:>8}: {r['uploads']} uploads {r['statuses']}, {r['avatars_listed']} avatars listed; RSS "
              f"{r['rss_baseline_mb']} → {r['rss_after_mb']} MB: {r['growth_mb']:+.1f} MB (limit +{LIMIT_MB:.0f}: {verdict}; "
              f"{r['growth_after_first_mb']:+.1f} MB after the first); "
              f"{r['seconds_per_upload'] * 1000:.0f} ms an upload")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "limit_mb": LIMIT_MB, "results": results}, indent=2) + "\n")
    return 0 if all(r["growth_mb"] <= LIMIT_MB for r in results) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
