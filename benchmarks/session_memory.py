"""Memory that comes back: 200 connect/disconnect cycles against a real server, half leaving without DELETE.

Each cycle one real aiortc client creates a session, connects, receives video for a moment and leaves: the even
ones politely (DELETE, then close), the odd ones by closing their peer connection without a DELETE (a tab
closed). At most one client is connected at a time: the next cycle starts when the server reports no session
(which also measures how fast an abandoned session is reclaimed). Printed: the server's RSS, threads and open
file descriptors idle after start, after the first 10 cycles, after all of them, and idle again at the end.

    python benchmarks/session_memory.py                 # 200 cycles
    python benchmarks/session_memory.py --cycles 40 --json out.json

Issue 16's targets: RSS after 200 within +20 MB of the level after 10, threads and fds back at baseline, an idle
server with no session at most 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from live_server import process_stats, start_server  # noqa: E402
from machine import machine  # noqa: E402
from peer import Viewer  # noqa: E402


def sessions_open(url: str) -> int:
    with urllib.request.urlopen(url + "/v1/health", timeout=10) as resp:
        return json.loads(resp.read())["sessions"]


async def wait_for_no_session(url: str, timeout_s: float = 60.0) -> float:
    t0 = time.monotonic()
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sessions_open, url):
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"a session was still open {timeout_s} s after its client left")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def settle(pid: int, seconds: float) -> dict:
    await asyncio.sleep(seconds)
    return process_stats(pid)


async def cycles(url: str, pid: int, n: int, watch_s: float) -> dict:
    out: dict = {"reclaim_s_polite": [], "reclaim_s_vanished": [], "frames": []}
    for i in range(n):
        viewer = Viewer(url)
        await viewer.connect()
        await asyncio.sleep(watch_s)
        out["frames"].append(len(viewer.frames))
        polite = i % 2 == 0
        await viewer.close(delete=polite)
        out["reclaim_s_polite" if polite else "reclaim_s_vanished"].append(await wait_for_no_session(url))
        if i + 1 == 10:
            out["after_10"] = await settle(pid, 2.0)
        if (i + 1) % 20 == 0:
            print(f"  {i + 1} cycles: {process_stats(pid)}", flush=True)
    out["after_all"] = await settle(pid, 2.0)
    return out


def run_variant(cycles_n: int, watch_s: float, server_args: list[str], env: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="avatar-rt-mem-") as tmp:
        proc, url = start_server(tmp, *server_args, env=env)
        try:
            idle_start = asyncio.run(settle(proc.pid, 5.0))
            print(f"  idle after start: {idle_start}", flush=True)
            t0 = time.monotonic()
            result = asyncio.run(cycles(url, proc.pid, cycles_n, watch_s))
            elapsed = time.monotonic() - t0
            idle_end = asyncio.run(settle(proc.pid, 5.0))
        finally:
            proc.terminate()
            proc.wait(30)
    a10, aall = result["after_10"], result["after_all"]
    return {
        "cycles": cycles_n, "seconds": round(elapsed, 1), "idle_after_start": idle_start, "after_10": a10,
        "after_all": aall, "idle_at_end": idle_end, "rss_growth_mb_10_to_end": round(aall["rss_mb"] - a10["rss_mb"], 1),
        "reclaim_s_polite_max": round(max(result["reclaim_s_polite"]), 2),
        "reclaim_s_vanished_max": round(max(result["reclaim_s_vanished"] or [0.0]), 2),
        "frames_per_cycle_min": min(result["frames"]),
    }


def report(name: str, r: dict) -> None:
    a10, aall, idle = r["after_10"], r["after_all"], r["idle_after_start"]
    print(f"{name}: idle after start {idle}; after 10 cycles {a10}; after {r['cycles']} {aall} ({r['seconds']:.0f} s); "
          f"idle at the end {r['idle_at_end']}")
    print(f"{name}: RSS growth from cycle 10 to {r['cycles']}: {r['rss_growth_mb_10_to_end']:+.1f} MB (target ≤ +20); "
          f"threads {a10['threads']} → {aall['threads']}, fds {a10['fds']} → {aall['fds']} (idle start: "
          f"{idle['threads']} threads, {idle['fds']} fds); sessions reclaimed after their client left: polite ≤ "
          f"{r['reclaim_s_polite_max']} s, without DELETE ≤ {r['reclaim_s_vanished_max']} s; fewest frames in a "
          f"cycle: {r['frames_per_cycle_min']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--watch", type=float, default=0.6, help="seconds of video per cycle (default 0.6)")
    parser.add_argument("--compare", action="store_true",
                        help="first run the server without releasing memory (AVATAR_RT_MEMORY_RELEASE=0: no arena "
                             "cap, no malloc_trim), then as shipped")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("server_args", nargs="*", help="extra `avatar-rt serve` flags (after --)")
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info}")
    variants = ([("before (no memory release)", {"AVATAR_RT_MEMORY_RELEASE": "0"})] if args.compare else []) + \
        [("as shipped", {})]
    results = {}
    for name, env in variants:
        print(f"{name}: {args.cycles} cycles", flush=True)
        results[name] = run_variant(args.cycles, args.watch, args.server_args, env)
    for name, r in results.items():
        report(name, r)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
