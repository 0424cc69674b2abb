"""Old vs new server code in the same run: `avatar-rt bench` against each, alternating, medians over rounds.

    python benchmarks/latency_ab.py --old /tmp/old-checkout [--new .] --sessions 1,4 --rounds 3 --seconds 15
    python benchmarks/latency_ab.py --tree base=/tmp/a --tree pool=/tmp/b --tree prefetch=/tmp/c ...
    python benchmarks/latency_ab.py --old /tmp/old-checkout --net-jitter 30   # through a jittery network

(--tree: several checkouts, each against the same bench, in a rotating order each round.)

Each checkout's server runs from its own tree (PYTHONPATH), the client is this checkout's bench, so
both are measured by the same instrument on the same loaded machine within minutes of each other.
Prints a table and writes --json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from avatar_rt.bench.machine import machine  # noqa: E402
from avatar_rt.bench.runner import run_level  # noqa: E402
from avatar_rt.bench.server import LocalServer  # noqa: E402
from avatar_rt.bench.stimulus import espeak_words  # noqa: E402

ROWS = (("mouth p50 ms", lambda lv: lv["mouth_ms"]["p50"]),
        ("mouth p95 ms", lambda lv: lv["mouth_ms"]["p95"]),
        ("mouth at frame complete p50 ms", lambda lv: lv["mouth_at_frame_complete_ms"]["p50"]),
        ("mouth at frame complete p95 ms", lambda lv: lv["mouth_at_frame_complete_ms"]["p95"]),
        ("server arrival->encoder p95 ms", lambda lv: lv["server"]["latency_ms"].get("p95")),
        ("server cores per session", lambda lv: lv["server"]["cores_per_session"]),
        ("server CPU ms per frame sent", lambda lv: lv["server"].get("cpu_ms_per_frame")),
        ("server ingress p50 ms", lambda lv: lv["server"]["stages_ms"].get("ingress", {}).get("p50")),
        ("server jitter p50 ms", lambda lv: lv["server"]["stages_ms"].get("jitter", {}).get("p50")),
        ("server jitter p95 ms", lambda lv: lv["server"]["stages_ms"].get("jitter", {}).get("p95")),
        ("input audio underruns", lambda lv: lv["server"].get("audio_underruns")),
        ("frame interval sd ms", lambda lv: lv["interval_sd_ms"]),
        ("worst session fps", lambda lv: lv["fps"]["min"]),
        ("frames missing", lambda lv: lv["missing_frames"]))


def run_variant(tree: Path, sessions: int, seconds: float, stimulus, net_jitter_ms: float = 0.0) -> dict:
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree) + (os.pathsep + env_path if env_path else "")
    try:
        server = LocalServer(sessions, cwd=tree)
    finally:
        if env_path is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_path
    try:
        return asyncio.run(run_level(server.url, sessions, seconds, stimulus, 25.0, server.pid,
                                     net_jitter_ms=net_jitter_ms))
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, help="checkout of the old code")
    parser.add_argument("--new", type=Path, default=REPO, help="checkout of the new code (default: this one)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="compare these checkouts instead of --old/--new (repeatable)")
    parser.add_argument("--sessions", default="1", help="session counts, e.g. 1,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--net-jitter", type=float, default=0.0, metavar="MS",
                        help="the client's audio through a jittery network, 0 to MS ms per packet (avatar-rt bench)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import logging

    logging.getLogger("aioice").setLevel(logging.WARNING)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # servers started are stopped on the way out
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_1min']}, {info['date']}; the load client "
          "runs on the same machine", flush=True)
    stimulus = espeak_words(args.seconds)
    trees = dict(t.split("=", 1) for t in args.tree) if args.tree else {"old": args.old, "new": args.new}
    if any(v is None for v in trees.values()):
        parser.error("give --old (and optionally --new), or --tree NAME=PATH at least twice")
    trees = {k: Path(v) for k, v in trees.items()}
    names = list(trees)
    results: dict = {"machine": info, "trees": {k: str(v) for k, v in trees.items()}, "levels": {}}
    for n in [int(x) for x in args.sessions.split(",")]:
        runs = {k: [] for k in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                level = run_variant(trees[name], n, args.seconds, stimulus, args.net_jitter)
                level.pop("calls")
                runs[name].append(level)
                print(f"  {n} session(s) round {r + 1} {name}: mouth p50 {level['mouth_ms']['p50']} p95 "
                      f"{level['mouth_ms']['p95']} ms, cores/session {level['server']['cores_per_session']}, "
                      f"fps {level['fps']['min']}", flush=True)
        print(f"--- {n} session(s), median of {args.rounds} rounds each (alternating) ---")
        print(f"{'':34s} " + " ".join(f"{k:>9s}" for k in names))
        table = {}
        for label, get in ROWS:
            vals = {k: [get(lv) for lv in runs[k] if get(lv) is not None] for k in runs}
            med = {k: (round(statistics.median(v), 3) if v else None) for k, v in vals.items()}
            table[label] = med
            print(f"{label:34s} " + " ".join(f"{str(med[k]):>9s}" for k in names))
        results["levels"][n] = {"table": table, "runs": runs}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
