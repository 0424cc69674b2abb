"""The bench's outputs: a summary on the terminal, a JSON file, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from avatar_rt.server.metrics import STAGES


def _fmt(p: dict, unit: str = "ms") -> str:
    if not p or p.get("p50") is None:
        return "n/a"
    return f"p50 {p['p50']:g} / p95 {p['p95']:g} / p99 {p['p99']:g} {unit}"


def summary(result: dict) -> str:
    lines = [f"avatar-rt bench: {result['server']['url']} ({'started locally' if result['server']['local'] else 'given'})",
             f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, load {result['machine']['load_1min']}, "
             f"{result['machine']['date']}; the load client runs on {'this machine' if result['server']['local'] else 'this client machine'}"]
    for level in result["levels"]:
        s = level["server"]
        lines += [
            f"--- {level['sessions']} session(s), {level['seconds']:g} s ---",
            f"audio out -> mouth moves (received pixels): {_fmt(level['mouth_ms'])} "
            f"({level['mouth_ms']['n']} onsets, {level['onsets_missed']} not seen)",
            f"  same, at frame complete (client jitter buffer + decode taken out): {_fmt(level['mouth_at_frame_complete_ms'])}",
            f"offer answered -> first frame: {_fmt(level['first_frame_s'], 's')}",
            f"received fps: min {level['fps']['min']:g}, median {level['fps']['median']:g}; frame interval sd "
            f"{level['interval_sd_ms']:g} ms; frames missing {level['missing_frames']}; server skipped {s['dropped_frames']} "
            f"(late) and {s.get('transport_dropped_frames')} (transport lagged)",
            f"server: audio arrival -> frame to encoder p50 {s['latency_ms'].get('p50')} / p95 {s['latency_ms'].get('p95')} ms; "
            f"-> encoded and sent p95 {s['encoded_latency_ms'].get('p95')} ms; of which the model's lookahead "
            f"{s.get('lookahead_ms')} ms; input audio underruns {s.get('audio_underruns')}"
            + (f" (the client's audio through a jittery network: 0-{level['net_jitter_ms']:g} ms per packet)"
               if level.get("net_jitter_ms") else ""),
            f"server CPU {s['cores']} cores ({s['cores_per_session']} per session; {s.get('cpu_ms_per_frame')} ms "
            f"per frame sent), RSS {s['rss_mb']} MB "
            f"({s['rss_mb_per_session']} MB per session); the bench client itself used {level.get('client_cores')} cores",
        ]
        stages = s["stages_ms"]
        if stages:
            lines.append("  stages p50/p95 ms: " + ", ".join(
                f"{k} {stages[k].get('p50')}/{stages[k].get('p95')}" for k in STAGES if k in stages))
    if result.get("knee") is not None:
        lines.append(f"knee: {result['knee']} sessions (fps < 24 or mouth p95 doubled)")
    elif len(result["levels"]) > 1:
        lines.append("knee: not reached at the loads tried")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))


def write_plots(result: dict, prefix: Path) -> list[Path]:
    """<prefix>_latency.png (mouth latency per onset and stage bars) and, for a sweep, <prefix>_sweep.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    levels = result["levels"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for level in levels:
        values = sorted(v for c in level["calls"] for v in c["mouth_ms"] if v is not None)
        if values:
            ax1.plot(values, [(i + 1) / len(values) for i in range(len(values))], drawstyle="steps-post",
                     label=f"{level['sessions']} session(s)")
    ax1.set_xlabel("audio out → mouth moves (ms, received pixels)")
    ax1.set_ylabel("fraction of onsets")
    ax1.grid(alpha=0.3)
    ax1.legend()
    stages = levels[0]["server"]["stages_ms"]
    names = [k for k in STAGES if k in stages]
    ax2.barh(names[::-1], [stages[k].get("p50") or 0 for k in names[::-1]], label="p50")
    ax2.barh(names[::-1], [(stages[k].get("p95") or 0) - (stages[k].get("p50") or 0) for k in names[::-1]],
             left=[stages[k].get("p50") or 0 for k in names[::-1]], alpha=0.4, label="to p95")
    ax2.set_xlabel(f"server stage (ms), {levels[0]['sessions']} session(s)")
    ax2.legend()
    fig.suptitle(f"avatar-rt bench, {result['machine']['date']}, {result['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    path = Path(f"{prefix}_latency.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    if len(levels) > 1:
        n = [lv["sessions"] for lv in levels]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        ax1.plot(n, [lv["fps"]["min"] for lv in levels], "o-", label="received fps (worst session)")
        ax1.axhline(24, color="grey", ls="--", lw=1)
        ax1.set_xlabel("concurrent sessions")
        ax1.set_ylabel("fps")
        ax1.legend()
        ax1.grid(alpha=0.3)
        for key, label in (("p50", "mouth p50"), ("p95", "mouth p95")):
            ax2.plot(n, [lv["mouth_ms"][key] for lv in levels], "o-", label=label)
        ax2.plot(n, [lv["server"]["latency_ms"].get("p95") for lv in levels], "s--", label="server p95")
        if result.get("knee") is not None:
            ax2.axvline(result["knee"], color="red", lw=1, label="knee")
        ax2.set_xlabel("concurrent sessions")
        ax2.set_ylabel("ms")
        ax2.legend()
        ax2.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(f"{prefix}_sweep.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
