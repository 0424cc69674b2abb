"""Run N concurrent sessions for T seconds against a server and gather everything measured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from avatar_rt.bench.analysis import analyse_call, pcts
from avatar_rt.bench.call import BenchCall
from avatar_rt.bench.client import BenchError, http_json
from avatar_rt.bench.server import cores_between, process_usage
from avatar_rt.bench.stimulus import Stimulus

SETTLE_S = 1.0  # after the last session connects, before CPU is counted: startup work is not steady state


async def _metrics(http, url: str) -> dict | None:
    try:
        status, body = await http_json(http, "GET", f"{url}/v1/metrics")
    except BenchError:
        return None
    return body if status == 200 else None


def _stage_table(per_session: list[dict]) -> dict:
    """Median over sessions of each stage's server-side p50/p95/p99 (ms)."""
    stages: dict[str, dict[str, list[float]]] = {}
    for snap in per_session:
        for stage, values in (snap.get("stages_ms") or {}).items():
            for q, v in values.items():
                if v is not None:
                    stages.setdefault(stage, {}).setdefault(q, []).append(v)
    return {stage: {q: round(float(np.median(v)), 2) for q, v in qs.items()} for stage, qs in stages.items()}


def _server_pcts(per_session: list[dict], key: str) -> dict:
    out: dict[str, float] = {}
    for snap in per_session:
        for q, v in (snap.get(key) or {}).items():
            if v is not None:
                out.setdefault(q, []).append(v)
    return {q: round(float(np.max(v)), 1) for q, v in out.items()}  # the worst session


def _own_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _frames(metrics: dict | None, sessions: set[str]) -> int:
    return sum(s.get("frames", 0) for sid, s in ((metrics or {}).get("sessions") or {}).items() if sid in sessions)


async def run_level(url: str, sessions: int, seconds: float, stimulus: Stimulus, fps: float,
                    server_pid: int | None = None, tick: Callable[[float], None] | None = None,
                    net_jitter_ms: float = 0.0) -> dict:
    """One load level: `sessions` calls at once, all speaking `stimulus`, for `seconds` (their audio through a
    jittery network of `net_jitter_ms` when > 0: bench.client.Microphone)."""
    import aiohttp

    calls = [BenchCall(url, stimulus, net_jitter_ms, seed=i) for i in range(sessions)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        idle_metrics = await _metrics(http, url)
        idle = process_usage(idle_metrics, server_pid)
        try:
            results = await asyncio.gather(*(c.start(http) for c in calls), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0] if isinstance(errors[0], BenchError) else BenchError(
                    f"a session could not start: {errors[0]!r}")
            start = time.monotonic()
            await asyncio.sleep(SETTLE_S)
            before_metrics = await _metrics(http, url)
            before = process_usage(before_metrics, server_pid)
            client_before = (_own_cpu_s(), time.monotonic())
            while (elapsed := time.monotonic() - start) < seconds:
                if tick is not None:
                    tick(min(elapsed, seconds))
                await asyncio.sleep(min(0.5, seconds - elapsed))
            final = await _metrics(http, url)
            after = process_usage(final, server_pid)
            client_cores = (_own_cpu_s() - client_before[0]) / max(1e-6, time.monotonic() - client_before[1])
            if tick is not None:
                tick(seconds)
        finally:
            await asyncio.gather(*(c.stop(http) for c in calls), return_exceptions=True)
    per_call = [analyse_call(c.record, fps) for c in calls]
    ours = {c.record.session_id for c in calls}
    snaps = [s for sid, s in ((final or {}).get("sessions") or {}).items() if sid in ours]
    cores = cores_between(before, after)
    frames = _frames(final, ours) - _frames(before_metrics, ours)
    cpu_ms_per_frame = (round(1000.0 * (after["cpu_s"] - before["cpu_s"]) / frames, 2)
                        if before and after and frames > 0 else None)
    mouth = [v for c in per_call for v in c["mouth_ms"]]
    mouth_complete = [v for c in per_call for v in c["mouth_at_frame_complete_ms"]]
    return {
        "sessions": sessions,
        "seconds": seconds,
        "net_jitter_ms": net_jitter_ms,
        "mouth_ms": pcts(mouth),
        "mouth_at_frame_complete_ms": pcts(mouth_complete),
        "onsets_missed": sum(v is None for v in mouth),
        "first_frame_s": pcts([c["first_frame_s"] for c in per_call]),
        "fps": {"min": min(c["video"]["fps"] for c in per_call), "median": float(np.median(
            [c["video"]["fps"] for c in per_call]))},
        "interval_ms": pcts([v for c in per_call for v in [c["video"]["interval_ms"]["p99"]] if v is not None]),
        "interval_sd_ms": max((c["video"]["interval_sd_ms"] or 0.0) for c in per_call),
        "missing_frames": sum(c["video"]["missing_frames"] or 0 for c in per_call),
        "server": {
            "latency_ms": _server_pcts(snaps, "latency_ms"),
            "encoded_latency_ms": _server_pcts(snaps, "encoded_latency_ms"),
            # The lip-sync model's lookahead is a constant delay inside that figure; the rest is the engine's own.
            "lookahead_ms": max((s.get("lookahead_ms") or 0.0) for s in snaps) if snaps else None,
            "dropped_frames": sum(s.get("dropped_frames", 0) for s in snaps),
            "transport_dropped_frames": sum(s.get("transport_dropped_frames", 0) for s in snaps),
            # Slices of received audio that were incomplete when their frame was made (silence filled in).
            "audio_underruns": sum(s.get("audio_underruns", 0) for s in snaps),
            "stages_ms": _stage_table(snaps),
            "cores": None if cores is None else round(cores, 3),
            "cores_per_session": None if cores is None else round(cores / sessions, 3),
            # CPU per frame sent: what a session costs even when a starved machine sends fewer frames.
            "cpu_ms_per_frame": cpu_ms_per_frame,
            "rss_mb": after.get("rss_mb") if after else None,
            "rss_mb_per_session": (round((after["rss_mb"] - idle["rss_mb"]) / sessions, 1)
                                   if after and idle and after.get("rss_mb") and idle.get("rss_mb") else None),
            "load1": (final or {}).get("load1"),
        },
        "calls": per_call,
        "server_snapshots": snaps,
        # The load client's own CPU (this process: decoding every session's video, encoding its audio).
        "client_cores": round(client_cores, 3),
    }


def knee(levels: list[dict], min_fps: float = 24.0) -> int | None:
    """The first session count where fps fell below `min_fps` or the mouth's p95 doubled from the lightest load."""
    if not levels:
        return None
    base = levels[0]["mouth_ms"]["p95"]
    for level in levels:
        p95 = level["mouth_ms"]["p95"]
        if level["fps"]["min"] < min_fps or (base and p95 and p95 > 2 * base):
            return level["sessions"]
    return None
