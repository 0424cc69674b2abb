"""A long agent call: do lips and the returned voice stay together, and does buffered audio stay flat?

Starts the real server in this process, attaches an agent over the WebSocket and a real
aiortc viewer over WHEP, then plays a call for `--minutes`: espeak-ng replies pushed in
bursts 3× faster than real time, pauses of 1-4 s between them, and every fourth reply
interrupted (`clear`) at a random point. Lips vs returned voice, in the first and the last
minute (positive = lips after voice):

* `server_declared_rtp_rtcp` — what a standard viewer gets. A browser (or any WebRTC player
  with RTCP lip sync) shows a frame with the audio whose RTP timestamp maps, through the
  RTCP sender reports, to the same NTP time. For each video frame: NTP(frame) − NTP(audio
  of the same media time), from the sender reports the viewer received (benchmarks/rtp_sync.py);
* `proxy_raw_at_aiortc_viewer` — the content proxy (benchmarks/lips_voice.py: mouth-box
  darkness against the voice envelope, the shift that maximises their correlation, ±300 ms,
  10 ms grid) on the times aiortc's recv() handed each frame over: what a client that
  passes media on as it arrives gets (the Pipecat and LiveKit adapters do; the viewer is set
  up as theirs, `--viewer-audio-prefetch` to try aiortc's own 4);
* `proxy_on_rtcp_timeline` — the same proxy with each received frame placed at its declared
  NTP time: a content-side check of the declared number;
* `proxy_offline_baseline` — the proxy's own lead: the same code on an offline render of the
  same replies, where frame n shows the audio at n/fps by construction (a mouth opens before
  its sound, and the lip sync learned that). The `..._net_of_baseline_ms` numbers subtract it;
* `server_handoff_video_minus_audio` — when aiortc's senders took each video frame and the
  audio of the same media time from the session's tracks.

The issue's ±40 ms is judged on two numbers, both at start and end: the declared offset's
median (the offset every RTCP-syncing viewer gets) and the raw proxy net of the baseline
(what the engine's own adapters pass on); the declared p5-p95 shows how steady it is. Buffered
audio on the server (queued segment audio, the outgoing audio track's queue) is sampled every
second: its maximum in the first and the last two minutes.

    python benchmarks/agent_call.py [--minutes 10] [--baseline-seconds 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

import numpy as np

from agent_common import REPO, report, serve_in_process, tts  # benchmarks/agent_common.py, beside this script
from lips_voice import baseline_audio, lips_vs_voice, mouth_darkness, offline_baseline
from rtp_sync import ReceiverClock, SenderClock, declared_offsets

from avatar_rt.rtc_frames import VIEWER_AUDIO_PREFETCH

REPLIES = (
    "Thank you for calling Orbit Outfitters. How can I help you today?",
    "Let me check. Your order shipped yesterday and should arrive on Tuesday.",
    "I'm sorry to hear that. I can start a return for you right now.",
    "The refund reaches your card within five working days of the return.",
    "Is there anything else I can help you with about your account?",
    "You can also track the parcel on our website with the number I sent you.",
    "Of course. I have updated the delivery address to the one you gave me.",
    "Thanks for your patience, and have a wonderful day.",
)


ASTRONAUT = REPO / "avatar_rt" / "assets" / "astronaut_512.jpg"  # the portrait serve_in_process serves
NTP_EPOCH = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (time.time)


def handoff_offsets(handoffs: dict, t0: float, t1: float) -> dict:
    """For each video frame handed to its sender in [t0, t1): its hand-off time minus that of its media time's audio."""
    audio = sorted(handoffs["audio"])
    if len(audio) < 10:
        return {}
    at, ah = np.array([m for m, _ in audio]), np.array([h for _, h in audio])
    offs = [1000 * (h - np.interp(m, at, ah)) for m, h in handoffs["video"] if t0 <= h < t1 and at[0] <= m <= at[-1]]
    if not offs:
        return {}
    return {"median_ms": round(float(np.median(offs)), 1), "p5_ms": round(float(np.percentile(offs, 5)), 1),
            "p95_ms": round(float(np.percentile(offs, 95)), 1), "frames": len(offs)}


async def run(minutes: float, seed: int, baseline_s: float, viewer_prefetch: int) -> dict:
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from avatar_rt.rtc_frames import add_viewer_transceivers, received_frames

    from avatar_rt.avatar.reference import load_portrait
    from avatar_rt.client import AvatarClient

    rng = random.Random(seed)
    voices = [tts(text) for text in REPLIES]
    rate = voices[0][1]
    async with serve_in_process() as (app, base):
        # Received media on two timelines: when aiortc's recv() gave it (raw), and the NTP time the server
        # declared for it through RTP timestamps and sender reports (what a browser plays by).
        video: list[tuple[float, float]] = []
        audio: list[tuple[float, np.ndarray]] = []
        video_ntp: list[tuple[float, float]] = []
        audio_ntp: list[tuple[float, np.ndarray]] = []
        ntp_minus_monotonic = time.time() + NTP_EPOCH - time.monotonic()
        buffered: list[tuple[float, float, int]] = []
        async with AvatarClient(base) as client:
            session = await client.create_session()
            box = session.raw["avatar"]["mouth_box"]
            server_session = app["server"].sessions[session.session_id]
            handoffs: dict[str, list[tuple[float, float]]] = {"video": [], "audio": []}

            def log_handoff(track, kind: str, clock: int) -> None:
                recv = track.recv

                async def logged():
                    frame = await recv()
                    handoffs[kind].append((frame.pts / clock, time.monotonic()))  # (media time, hand-off time)
                    return frame

                track.recv = logged

            log_handoff(server_session.video, "video", 90_000)
            log_handoff(server_session.audio, "audio", 16_000)
            pc = RTCPeerConnection()
            # The viewer the engine's Python adapters use (avatar_rt.adapters.remote), unless told otherwise.
            receivers = {kind: ReceiverClock(receiver, kind)
                         for kind, receiver in add_viewer_transceivers(pc, viewer_prefetch).items()}

            async def read(track):
                import av

                clock = receivers[track.kind]
                resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
                async for frame in received_frames(track):
                    now = time.monotonic()
                    rtp = clock.frame_rtp(frame.pts)
                    declared = clock.ntp(rtp, now) if rtp is not None else None
                    if track.kind == "video":
                        dark = mouth_darkness(frame, box)
                        video.append((now, dark))
                        if declared is not None:
                            video_ntp.append((declared - ntp_minus_monotonic, dark))
                    else:
                        for f in resampler.resample(frame):
                            pcm = f.to_ndarray().reshape(-1)
                            audio.append((now, pcm))
                            if declared is not None:
                                end_of_frame = declared + frame.samples / frame.sample_rate
                                audio_ntp.append((end_of_frame - ntp_minus_monotonic, pcm))

            tasks = []
            pc.on("track", lambda t: tasks.append(asyncio.ensure_future(read(t))))
            await pc.setLocalDescription(await pc.createOffer())
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/v1/sessions/{session.session_id}/whep", data=pc.localDescription.sdp,
                                     headers={"Content-Type": "application/sdp"}) as resp:
                    answer = await resp.text()
            senders = {s.track.kind: SenderClock(s, s.track.kind) for s in server_session.pc.getSenders()
                       if s.track in (server_session.video, server_session.audio)}
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

            async def sample_buffers():
                while True:
                    link = server_session.agent
                    if link is not None:
                        buffered.append((time.monotonic(), link.player.buffered_samples / 16000,
                                         server_session.audio._queue.qsize()))
                    await asyncio.sleep(1.0)

            sampler = asyncio.create_task(sample_buffers())
            async with await client.connect_agent(session.session_id, sample_rate=rate) as agent:
                await asyncio.sleep(2.0)
                start = time.monotonic()
                end = start + minutes * 60
                replies = interrupted = 0
                while time.monotonic() < end - 5:
                    pcm, _ = voices[replies % len(voices)]
                    segment = await agent.start_segment(f"r{replies}")
                    chunk = rate // 5  # 200 ms of TTS at a time, 3× faster than real time
                    cut = replies % 4 == 3
                    cut_at = time.monotonic() + rng.uniform(0.5, 2.0) if cut else None
                    for i in range(0, len(pcm), chunk):
                        await agent.push_audio(pcm[i:i + chunk])
                        await asyncio.sleep(0.2 / 3)
                    await agent.end_segment(segment)
                    if cut:
                        await asyncio.sleep(max(0.0, cut_at - time.monotonic()))
                        await agent.clear()
                        interrupted += 1
                    await agent.wait_finished(segment, timeout=60)
                    replies += 1
                    await agent.set_state("listening")
                    await asyncio.sleep(rng.uniform(1.0, 4.0))
                    print(f"\r{(time.monotonic() - start) / 60:.1f}/{minutes:g} min, {replies} replies",
                          end="", file=sys.stderr, flush=True)
                print(file=sys.stderr)
                stop = time.monotonic()
            sampler.cancel()
            await pc.close()
            for t in tasks:
                t.cancel()

    def peak(t0: float, t1: float) -> dict:
        inside = [(b, q) for t, b, q in buffered if t0 <= t < t1]
        return {"max_buffered_s": round(max(b for b, _ in inside), 2),
                "max_audio_track_queue": max(q for _, q in inside)} if inside else {}

    if baseline_s > 0:
        print(f"offline baseline: rendering {baseline_s:g} s of the same replies ...", file=sys.stderr, flush=True)
        baseline = offline_baseline(load_portrait(ASTRONAUT), box, baseline_audio(voices, baseline_s, seed))
    else:
        baseline = {"error": "skipped (--baseline-seconds 0)"}

    def window(t0: float, t1: float) -> dict:
        raw = lips_vs_voice(video, audio, t0, t1)
        on_rtcp = lips_vs_voice(video_ntp, audio_ntp, t0, t1)
        declared = declared_offsets(handoffs["video"], senders, receivers, t0, t1)
        raw_net = net(raw, baseline)
        return {
            "server_declared_rtp_rtcp": declared,
            "proxy_raw_at_aiortc_viewer": raw,
            "proxy_raw_net_of_baseline_ms": raw_net,
            "proxy_on_rtcp_timeline": on_rtcp,
            "proxy_on_rtcp_timeline_net_of_baseline_ms": net(on_rtcp, baseline),
            "server_handoff_video_minus_audio": handoff_offsets(handoffs, t0, t1),
            # The issue's ±40 ms, on the two numbers it is judged on (module docstring).
            "within_40ms": {"declared_median": within(declared.get("median_ms")),
                            "viewer_net_of_baseline": within(raw_net)},
        }

    return {
        "minutes": round((stop - start) / 60, 2), "replies": replies, "interrupted": interrupted,
        "viewer_audio_prefetch": viewer_prefetch,
        "proxy_offline_baseline": {**baseline, "seconds": baseline_s},
        "lips_vs_voice_first_minute": window(start, start + 60),
        "lips_vs_voice_last_minute": window(stop - 60, stop),
        # Distinct RTP origins seen per sender: 1 unless aiortc changed how it stamps packets.
        "sender_rtp_origins": {k: len(c.origins) for k, c in senders.items()},
        "buffers_first_2_min": peak(start, start + 120), "buffers_last_2_min": peak(stop - 120, stop),
        "video_frames_received": len(video),
    }


def within(offset_ms: float | None, bound_ms: float = 40.0) -> bool | None:
    return None if offset_ms is None else abs(offset_ms) <= bound_ms


def summary(result: dict) -> str:
    """The lips-vs-voice numbers as a small table (ms, positive = lips after voice)."""
    first, last = result["lips_vs_voice_first_minute"], result["lips_vs_voice_last_minute"]

    def declared(w: dict) -> str:
        d = w["server_declared_rtp_rtcp"]
        return f"{d['median_ms']:+.1f} [{d['p5_ms']:+.0f}, {d['p95_ms']:+.0f}]" if "median_ms" in d else "-"

    def offset(w: dict, key: str) -> str:
        v = w[key].get("offset_ms") if isinstance(w[key], dict) else w[key]
        return "-" if v is None else f"{v:+.0f}"

    rows = [("server-declared (RTP/RTCP) median [p5, p95]", declared(first), declared(last)),
            ("proxy raw at the aiortc viewer", offset(first, "proxy_raw_at_aiortc_viewer"),
             offset(last, "proxy_raw_at_aiortc_viewer")),
            ("proxy offline baseline (its own lead)", offset(result, "proxy_offline_baseline"), ""),
            ("proxy raw net of the baseline", offset(first, "proxy_raw_net_of_baseline_ms"),
             offset(last, "proxy_raw_net_of_baseline_ms")),
            ("proxy on the RTCP timeline net of the baseline", offset(first, "proxy_on_rtcp_timeline_net_of_baseline_ms"),
             offset(last, "proxy_on_rtcp_timeline_net_of_baseline_ms")),
            ("within ±40 ms: declared median, viewer net",
             f"{first['within_40ms']['declared_median']}, {first['within_40ms']['viewer_net_of_baseline']}",
             f"{last['within_40ms']['declared_median']}, {last['within_40ms']['viewer_net_of_baseline']}")]
    lines = [f"{'lips vs voice, ms (+ = lips after voice)':48} {'first minute':>22} {'last minute':>22}"]
    lines += [f"{name:48} {a:>22} {b:>22}" for name, a, b in rows]
    return "\n".join(lines)


def net(measured: dict, baseline: dict) -> float | None:
    """The proxy's offset on the call minus its offset where lips and voice are aligned by construction."""
    if "offset_ms" not in measured or "offset_ms" not in baseline:
        return None
    return measured["offset_ms"] - baseline["offset_ms"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the call (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-seconds", type=float, default=60.0,
                        help="length of the offline render that measures the proxy's own lead (default 60)")
    parser.add_argument("--viewer-audio-prefetch", type=int, default=VIEWER_AUDIO_PREFETCH,
                        help="audio packets the aiortc viewer holds before decoding (default "
                             f"{VIEWER_AUDIO_PREFETCH}, as the engine's adapters; aiortc's own default is 4)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    result = asyncio.run(run(args.minutes, args.seed, args.baseline_seconds, args.viewer_audio_prefetch))
    print(summary(result), file=sys.stderr)
    report("agent_call", result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
