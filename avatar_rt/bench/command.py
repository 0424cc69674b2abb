"""`avatar-rt bench`: what a user feels, measured against any server (or one it starts)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from avatar_rt.engines.select import BACKEND_CHOICES


def _levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sweep takes session counts like 1,2,4 (got {text!r})") from None
    if not levels or any(n < 1 or n > 64 for n in levels):
        raise argparse.ArgumentTypeError("--sweep session counts must be between 1 and 64")
    return sorted(set(levels))


def add_parser(sub) -> None:
    bench = sub.add_parser(
        "bench", help="measure latency and capacity end to end against a server",
        description="Connect real WebRTC sessions to a server, speak espeak-ng words with sharp onsets (or a WAV), "
                    "and measure from the received video: audio out → mouth moves, offer → first frame, fps, "
                    "frame jitter, dropped frames; from the server's /v1/metrics: the per-stage breakdown, CPU and "
                    "memory. Writes JSON and PNG plots.")
    bench.add_argument("--url", help="server to measure, e.g. http://127.0.0.1:8080 (default: start one locally "
                                     "on a free port and stop it afterwards)")
    bench.add_argument("-n", "--sessions", type=int, default=1, help="concurrent sessions (default: 1)")
    bench.add_argument("-t", "--seconds", type=float, default=20.0,
                       help="how long each load level runs, in seconds (default: 20)")
    bench.add_argument("--sweep", type=_levels, metavar="N,N,...",
                       help="run several load levels in turn (e.g. 1,2,4,8) and report the knee: the first count "
                            "where a session falls below 24 fps or the mouth's p95 doubles; overrides -n")
    bench.add_argument("--wav", type=Path, help="speak this recording (WAV or anything FFmpeg reads) instead of "
                                                "espeak-ng words; onsets are found after ≥ 0.8 s of silence")
    bench.add_argument("--fps", type=float, default=25.0, help="the server's frame rate (default: 25)")
    bench.add_argument("--net-jitter", type=float, default=0.0, metavar="MS",
                       help="play a jittery network: hold each 20 ms audio packet the client sends back a random "
                            "0 to MS ms (in order); latency still counts from when each packet was due "
                            "(default: 0, none)")
    bench.add_argument("--server-pid", type=int,
                       help="read CPU and memory from /proc/PID (for a local server whose /v1/metrics has no "
                            "process figures)")
    bench.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                       help="extra argument for the locally started server (repeatable), e.g. --serve-arg=--size=256")
    bench.add_argument("--backend", choices=BACKEND_CHOICES, default=None,
                       help="the backend of the server bench starts (as `avatar-rt serve --backend`; checked here "
                            "before it starts: one that cannot run is an error). Not with --url: that server chose")
    bench.add_argument("-o", "--output", type=Path, default=Path("bench"),
                       help="output prefix: writes PREFIX.json, PREFIX_latency.png and, for a sweep, "
                            "PREFIX_sweep.png (default: ./bench)")
    bench.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")


async def _run(args, url: str, pid: int | None, stimulus) -> list[dict]:
    from tqdm import tqdm

    from avatar_rt.bench.runner import run_level

    levels = args.sweep or [args.sessions]
    bar = tqdm(total=len(levels) * args.seconds, unit="s", desc="bench",
               disable=args.no_progress, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")
    results = []
    for i, n in enumerate(levels):
        bar.set_description(f"{n} session(s)")
        base = i * args.seconds

        def tick(elapsed: float, base=base) -> None:
            bar.n = base + elapsed
            bar.refresh()

        results.append(await run_level(url, n, args.seconds, stimulus, args.fps, pid, tick, args.net_jitter))
    bar.close()
    return results


def run(args: argparse.Namespace) -> int:
    from avatar_rt.bench import report
    from avatar_rt.bench.client import BenchError
    from avatar_rt.bench.machine import machine
    from avatar_rt.bench.runner import knee
    from avatar_rt.bench.server import LocalServer, check_reachable
    from avatar_rt.bench.stimulus import espeak_words, from_wav

    if args.sessions < 1 or args.seconds < 3 or not 0 <= args.net_jitter <= 1000:
        print("avatar-rt bench: --sessions must be ≥ 1, --seconds ≥ 3 and --net-jitter 0-1000 ms", file=sys.stderr)
        return 2
    serve_args = list(args.serve_arg)
    if args.backend is not None:
        from avatar_rt.engines import EngineError, choose

        if args.url:
            print("avatar-rt bench: --backend chooses the backend of the server bench starts; the server at --url "
                  "runs on the backend it was started with", file=sys.stderr)
            return 2
        try:
            choose(args.backend)  # fail here, in one line, rather than in the server's startup log
        except EngineError as exc:
            print(f"avatar-rt bench: {exc}", file=sys.stderr)
            return 2
        serve_args += ["--backend", args.backend]
    from avatar_rt.errors import AvatarRtError

    try:
        stimulus = from_wav(args.wav) if args.wav else espeak_words(args.seconds)
    except AvatarRtError as exc:
        print(f"avatar-rt bench: {exc.message}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"avatar-rt bench: {exc}", file=sys.stderr)
        return 2
    import logging

    logging.getLogger("aioice").setLevel(logging.WARNING)  # every ICE check is news to no one measuring latency
    levels = args.sweep or [args.sessions]
    local = None
    try:
        if args.url:
            url = args.url.rstrip("/")
            health = check_reachable(url)
            if health.get("max_sessions") and max(levels) > health["max_sessions"]:
                raise BenchError(f"the server allows {health['max_sessions']} sessions; {max(levels)} were asked "
                                 "for (start it with a larger --max-sessions)")
        else:
            import signal

            # A terminated bench still stops the server it started (the finally below).
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            print("avatar-rt bench: starting a local server …", file=sys.stderr, flush=True)
            local = LocalServer(max(levels), serve_args)
            url = local.url
        pid = args.server_pid or (local.pid if local else None)
        results = asyncio.run(_run(args, url, pid, stimulus))
    except BenchError as exc:
        print(f"avatar-rt bench: {exc}", file=sys.stderr)
        return 3
    finally:
        if local is not None:
            local.close()
    result = {
        "machine": machine(),
        "server": {"url": url, "local": local is not None},
        "stimulus": {"source": stimulus.source, "onsets": len(stimulus.onsets_s)},
        "levels": results,
        "knee": knee(results) if len(results) > 1 else None,
    }
    print(report.summary(result))
    report.write_json(result, Path(f"{args.output}.json"))
    plots = report.write_plots(result, args.output)
    print(f"wrote {args.output}.json, " + ", ".join(str(p) for p in plots))
    return 0
