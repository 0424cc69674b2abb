"""Every millisecond from microphone to mouth, as a markdown table, from an `avatar-rt bench` JSON.

    python benchmarks/latency_table.py docs/bench/bench.json [--level 1]

Server stages are the medians over the run of what /v1/metrics measured per frame; the client's
hold is what the bench measured on its side; the media-clock row is the same mouth measurement
on frames the pipeline renders offline from the same words (avatar_rt/bench/media_clock.py):
frame alignment, the model's response to an onset and the time to pass the threshold. Their sum
is printed beside the end-to-end figure the bench measured from the received pixels.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

WHY = {
    "lead": "client: the bench's microphone sends each 20 ms packet when its first sample is due, so a frame's last "
            "packet leaves 20 ms before the frame's end, and an onset counts as sent with its packet, on average "
            "this many ms before the onset itself (a real microphone waits for the last sample: +20 ms in a "
            "browser); Opus encode and the loopback network: ~0",
    "ingress": "server: each RTP packet straight to Opus decode on aiortc's decoder thread (the server replaces "
               "aiortc's audio buffer, which held a packet until the next one arrived: 20 ms), 48 → 16 kHz",
    "media": "pipeline, on the media clock (offline render of the same words): the onset waits for the rest of its "
             "40 ms frame, then the mouth needs to pass a quarter of its peak change",
    "jitter": "server: from the frame's newest sample arriving to the tick that takes it: the frame clock is "
              "phase-locked to the arrivals (a guard of 2 ms behind the latest arrival of the last 2 s), the "
              "adaptive jitter buffer only refills after an underrun",
    "lookahead": "server: the lip-sync model's future context (owned by the model, not changed here)",
    "motion": "server: VAD, log-mel features, lip-sync stage A, behaviour stage B, edits",
    "rig": "server: motion parameters → 478 landmarks",
    "render": "server: warp, mouth interior, composite (512×512)",
    "convert": "server: BGR → I420 for the encoder",
    "queue": "server: the frame waits for the transport to ask for it",
    "encode": "server: VP8 encode, RTP packetize, SRTP, send (aiortc)",
    "client": "client: aiortc releases a frame when the next frame's first packet arrives (one frame, 40 ms), then "
              "VP8 decode; a browser releases on the RTP marker bit instead",
}


def table(result: dict, sessions: int, media_ms: float | None, lead_ms: float) -> str:
    level = next(lv for lv in result["levels"] if lv["sessions"] == sessions)
    stages = level["server"]["stages_ms"]
    rows = [("lead", lead_ms)]
    rows += [("ingress", stages.get("ingress", {}).get("p50"))]
    rows += [("media", media_ms)]
    rows += [(k, stages.get(k, {}).get("p50")) for k in ("jitter", "lookahead", "motion", "rig", "render", "convert",
                                                         "queue", "encode")]
    holds = [c["client_hold_ms"]["p50"] for c in level["calls"] if c["client_hold_ms"]["p50"] is not None]
    rows += [("client", sorted(holds)[len(holds) // 2] if holds else None)]
    lines = ["| stage | ms (p50) | why it is there |", "|---|---:|---|"]
    total = 0.0
    for name, ms in rows:
        total += ms or 0.0
        lines.append(f"| {name} | {'n/a' if ms is None else f'{ms:.1f}'} | {WHY[name]} |")
    measured = level["mouth_ms"]["p50"]
    lines.append(f"| **sum** | **{total:.1f}** | |")
    lines.append(f"| **measured end to end** (audio out → mouth moves, received pixels) | **{measured:.1f}** | "
                 f"p95 {level['mouth_ms']['p95']:.1f}, p99 {level['mouth_ms']['p99']:.1f}; the sum is "
                 f"{100.0 * (total - measured) / measured:+.0f} % off |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", type=Path)
    parser.add_argument("--level", type=int, default=1, help="which session count (default 1)")
    parser.add_argument("--media-ms", type=float, help="skip the offline render and use this media-clock figure")
    args = parser.parse_args()
    result = json.loads(args.json.read_text())
    import statistics

    from avatar_rt.bench.client import FRAME, SEND_RATE
    from avatar_rt.bench.stimulus import espeak_words

    level = next(lv for lv in result["levels"] if lv["sessions"] == args.level)
    stimulus = espeak_words(level["seconds"])
    # Where each onset sits inside its 20 ms packet: the bench counts it sent when the packet leaves.
    inside = statistics.mean(1000.0 * (round(t * SEND_RATE) % FRAME) / SEND_RATE for t in stimulus.onsets_s)
    lead_ms = -1000.0 * FRAME / SEND_RATE + inside
    media_ms = args.media_ms
    if media_ms is None:
        from avatar_rt.bench.media_clock import media_reactions

        reactions = [1000.0 * r for r in media_reactions(stimulus) if r is not None]
        media_ms = statistics.median(reactions)
        print(f"<!-- media clock: {len(reactions)} onsets, median {media_ms:.1f} ms, range "
              f"{min(reactions):.1f}-{max(reactions):.1f} -->")
    m = result["machine"]
    print(f"<!-- {args.json}: {m['cpu']}, {m['cores']} cores, load {m['load_1min']}, {m['date']} -->")
    print(table(result, args.level, media_ms, lead_ms))


if __name__ == "__main__":
    main()
