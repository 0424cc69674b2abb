"""Barge-in: 50 interrupt/resume cycles against the real server, timed on the server side.

Starts the server in this process (the real app, session, pipeline and motion model),
connects an agent over the WebSocket, and per cycle: speaks a TTS reply (espeak-ng,
22.05 kHz, pushed all at once), interrupts it with `clear` at a random point while it
plays, and at once starts the next reply (resume). The server is instrumented, not
altered: the pipeline's frames, the audio handed to the outgoing track and the agent
events are logged in the order they happen, with time.monotonic() stamps.

Per cycle it measures
  * clear → playback.finished{interrupted} (ms),
  * clear → the first frame the server *makes* after the clear leaves (ms),
  * the mouth: opening of that first frame ÷ the last frame out before the clear
    (opening = max(jaw_open, lower_lip_drop); < 1 means moving toward rest), and frames
    until the mouth is at rest (opening < 0.05),
  * stale audio: non-silent audio handed to the track after the cleared segment's
    finished and before the next segment's playback.started (must be 0).

    python benchmarks/barge_in.py [--cycles 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from agent_common import report, serve_in_process, tts  # benchmarks/agent_common.py, beside this script

REST = 0.05


def opening(params) -> float:
    return max(params.jaw_open, params.lower_lip_drop)


def stats(values: list[float]) -> dict:
    arr = np.array(values, dtype=float)
    if not len(arr):
        return {"n": 0}
    return {"n": len(arr), "median": round(float(np.median(arr)), 3), "p99": round(float(np.percentile(arr, 99)), 3),
            "max": round(float(arr.max()), 3)}


class Recorder:
    """One ordered log of what the session did (frames made, audio sent, agent events)."""

    def __init__(self, session):
        self.log: list[tuple] = []
        self.session = session
        pipeline = session.pipeline
        step = pipeline.step

        def timed_step(*args, **kwargs):
            t = time.monotonic()
            out = step(*args, **kwargs)
            if out is not None:
                self.log.append(("frame", t, out.index, opening(out.params)))
            return out

        pipeline.step = timed_step
        put = session.audio.put

        def logged_put(pcm):
            self.log.append(("audio", time.monotonic(), int(np.abs(pcm.astype(np.int32)).max(initial=0))))
            put(pcm)

        session.audio.put = logged_put

    def attach_link(self, link) -> None:
        link.subscribe(lambda e: self.log.append(("event", time.monotonic(), e["type"], e.get("id"),
                                                  e.get("interrupted"))))
        clear = link.clear

        def logged_clear():
            self.log.append(("clear", time.monotonic()))
            clear()

        link.clear = logged_clear


def analyse(log: list[tuple], cycles: int) -> dict:
    clears = [i for i, e in enumerate(log) if e[0] == "clear"]
    to_finished, to_frame, ratios, rest_frames, stale = [], [], [], [], 0
    for k, ci in enumerate(clears[:cycles]):
        t_clear = log[ci][1]
        cleared_id = f"r{k}"
        fin = next(i for i in range(ci, len(log)) if log[i][0] == "event" and log[i][2] == "playback.finished"
                   and log[i][3] == cleared_id)
        assert log[fin][4] is True, f"{cleared_id} finished without interrupted"
        to_finished.append(1000 * (log[fin][1] - t_clear))
        after = [e for e in log[ci:] if e[0] == "frame" and e[1] > t_clear]
        if not after:
            continue
        first = after[0]
        # The frame out just before it (its step may have been under way when the clear came).
        before = [e for e in log[:log.index(first)] if e[0] == "frame"]
        if not before:
            continue
        to_frame.append(1000 * (next(e[1] for e in log[ci:] if e[0] == "audio" and e[1] > first[1]) - t_clear))
        if before[-1][3] > REST:
            ratios.append(first[3] / before[-1][3])
        n = next((j for j, e in enumerate(after) if e[3] < REST), len(after))
        rest_frames.append(n)
        nxt = next((i for i in range(fin, len(log)) if log[i][0] == "event" and log[i][2] == "playback.started"),
                   len(log))
        stale += sum(1 for e in log[fin:nxt] if e[0] == "audio" and e[2] > 0)
    finished = [e for e in log if e[0] == "event" and e[2] == "playback.finished"]
    ids = [e[3] for e in finished]
    return {
        "cycles": len(clears[:cycles]),
        "clear_to_finished_ms": stats(to_finished),
        "clear_to_first_new_frame_sent_ms": stats(to_frame),
        "first_frame_opening_ratio": stats(ratios),
        "first_frame_moving_to_rest": f"{sum(r < 1 for r in ratios)}/{len(ratios)} (cycles with the mouth open)",
        "frames_until_rest": stats(rest_frames),
        "stale_audio_chunks_after_finished": stale,
        "finished_events": len(finished), "duplicate_finished": len(ids) - len(set(ids)),
    }


async def run(cycles: int, seed: int) -> dict:
    import aiohttp

    rng = random.Random(seed)
    pcm, rate = tts("Thanks for waiting. Your order shipped yesterday and should arrive on Tuesday, "
                    "and I can send you the tracking number by email.")
    async with serve_in_process() as (app, base):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/v1/sessions", json={}) as resp:
                sid = (await resp.json())["session_id"]
            session = app["server"].sessions[sid]
            rec = Recorder(session)
            async with http.ws_connect(f"{base}/v1/sessions/{sid}/agent?sample_rate={rate}") as ws:
                rec.attach_link(session.agent)
                events: asyncio.Queue = asyncio.Queue()

                async def reader():
                    async for msg in ws:
                        events.put_nowait(json.loads(msg.data))

                read_task = asyncio.create_task(reader())

                async def wait_for(kind: str, sid_: str) -> None:
                    while True:
                        e = await asyncio.wait_for(events.get(), 30)
                        if e["type"] == kind and e.get("id") == sid_:
                            return

                await asyncio.sleep(1.0)  # the pipeline warms up (first ONNX runs)
                for k in range(cycles + 1):
                    await ws.send_json({"type": "segment.start", "id": f"r{k}"})
                    await ws.send_bytes(pcm.tobytes())
                    await ws.send_json({"type": "segment.end", "id": f"r{k}"})
                    if k == cycles:
                        break
                    await wait_for("playback.started", f"r{k}")
                    await asyncio.sleep(rng.uniform(0.4, 1.6))  # into the reply, mostly mid-word
                    await ws.send_json({"type": "clear"})
                    await wait_for("playback.finished", f"r{k}")
                    print(f"\rcycle {k + 1}/{cycles}", end="", file=sys.stderr, flush=True)
                print(file=sys.stderr)
                await asyncio.sleep(0.5)
                read_task.cancel()
    return analyse(rec.log, cycles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50, help="interrupt/resume cycles (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the interrupt times (default 0)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    report("barge_in", asyncio.run(run(args.cycles, args.seed)), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
