"""A long call: one real aiortc client speaks to the server for an hour (speech, then pauses) and samples
how the call holds up over time.

Sampled every --every seconds, over that window:

* fps: video frames received per second;
* A/V offset: at the receiver, how far video arrives ahead of or behind the audio of the same media time
  (arrival time minus RTP media time, video minus audio, medians over the window). RTP clocks start at random
  offsets, so the number that matters is its drift from the first window: the issue's target is ≤ 40 ms;
* latency: the audio path's mouth-to-ear delay (the sent speech envelope against the received one, by
  cross-correlation over the window's speech), the control channel's ping round trip, and the server's
  event-loop lag (p99 over its last minute, /v1/metrics);
* RSS of the server process.

Then a PNG plot of the four over time and a JSON of the samples, and a verdict on the issue's targets for an
hour: A/V offset drift ≤ 40 ms, no fps decline, RSS growth ≤ 20 MB (start and end: medians of the first and
last tenth of the windows; exit status 1 when one fails).

    python benchmarks/soak.py                         # one hour
    python benchmarks/soak.py --minutes 2 --every 10  # a short check that it works
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from live_server import process_stats, start_server  # noqa: E402
from machine import machine  # noqa: E402
from peer import PcmTrack, Viewer  # noqa: E402

SENTENCES = ["The quick brown fox jumps over the lazy dog, and then it runs away.",
             "Please call me back when you have a moment to talk about the plan.",
             "We measured the latency of the whole pipeline for an hour."]


def speech_48k(tmp: Path) -> np.ndarray:
    """A few espeak-ng sentences at 48 kHz (a synthetic voice pattern where espeak-ng is missing)."""
    if shutil.which("espeak-ng"):
        parts = []
        for i, text in enumerate(SENTENCES):
            path = tmp / f"s{i}.wav"
            subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
            with wave.open(str(path)) as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
                rate = w.getframerate()
            t = np.arange(int(len(pcm) * 48000 / rate)) * rate / 48000
            parts.append(np.interp(t, np.arange(len(pcm)), pcm))
            parts.append(np.zeros(48000))  # a 1 s pause between sentences
        return np.concatenate(parts).astype(np.int16)
    t = np.arange(48000 * 3) / 48000  # syllable-like bursts of a 160 Hz buzz
    return (8000 * np.sin(2 * np.pi * 160 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.int16)


class Recorder:
    """Receives the call's audio and video, keeping (arrival, media time) and the audio envelope."""

    def __init__(self, viewer: Viewer):
        self.viewer = viewer
        self.video: list[tuple[float, float]] = []  # (arrival, pts seconds)
        self.audio: list[tuple[float, float]] = []
        self.env_received: list[tuple[float, float]] = []  # (time of the 10 ms block's end, RMS)

    async def read(self, track) -> None:
        from avatar_rt.rtc_frames import received_frames

        async for frame in received_frames(track):
            now = time.monotonic()
            media = float(frame.pts * frame.time_base)
            if track.kind == "video":
                self.video.append((now, media))
                self.viewer.frames.append(now)
            else:
                self.audio.append((now, media))
                pcm = frame.to_ndarray().reshape(-1, frame.samples).astype(np.float64).mean(axis=0)
                block = frame.sample_rate // 100
                for k in range(len(pcm) // block):
                    end = now - (len(pcm) - (k + 1) * block) / frame.sample_rate
                    self.env_received.append((end, float(np.sqrt(np.mean(pcm[k * block:(k + 1) * block] ** 2)))))


def sent_envelope(mic: PcmTrack, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """The mic's 10 ms RMS envelope between wall times t0 and t1 (its samples play on the wall clock)."""
    times = np.arange(t0, t1, 0.01)
    idx = ((times - mic.start) * 48000).astype(int)
    pcm = mic.pcm.astype(np.float64)
    env = np.array([np.sqrt(np.mean(pcm[(i - 480) % len(pcm):(i - 480) % len(pcm) + 480] ** 2)) if i >= 480 else 0.0
                    for i in idx])
    return times, env


def mouth_to_ear_ms(mic: PcmTrack, rec: Recorder, t0: float, t1: float) -> float | None:
    """The lag (ms) that best lines the received audio envelope up with the sent one, over [t0, t1]."""
    rx = [(t, e) for t, e in rec.env_received if t0 <= t <= t1 + 1.0]
    if len(rx) < 200:
        return None
    times, sent = sent_envelope(mic, t0, t1)
    rt, re_ = np.array(rx).T
    best, best_lag = -1.0, None
    for lag_ms in range(0, 1000, 10):
        received = np.interp(times + lag_ms / 1000, rt, re_)
        if sent.std() == 0 or received.std() == 0:
            continue
        c = float(np.corrcoef(sent, received)[0, 1])
        if c > best:
            best, best_lag = c, lag_ms
    return float(best_lag) if best > 0.5 else None


def av_offset_ms(rec: Recorder, t0: float, t1: float) -> float | None:
    v = [a - m for a, m in rec.video if t0 <= a < t1]
    a = [a - m for a, m in rec.audio if t0 <= a < t1]
    if len(v) < 10 or len(a) < 10:
        return None
    return 1000.0 * (float(np.median(v)) - float(np.median(a)))


async def ping_ms(viewer: Viewer, ident: int) -> float | None:
    start = len(viewer.messages)
    sent = time.monotonic()
    viewer.channel.send(json.dumps({"type": "ping", "id": ident, "t": 0}))
    while time.monotonic() - sent < 5:
        if any(m.get("type") == "pong" and m.get("id") == ident for m in viewer.messages[start:]):
            return 1000.0 * (time.monotonic() - sent)
        await asyncio.sleep(0.005)
    return None


async def loop_lag_p99(viewer: Viewer) -> float | None:
    """The server's event-loop lag, p99 over its last minute (/v1/metrics event_loop; None on a server without)."""
    status, metrics = await viewer.call("GET", "/v1/metrics")
    return (metrics or {}).get("event_loop", {}).get("lag_ms", {}).get("p99") if status == 200 else None


async def soak(url: str, pid: int, minutes: float, every: float, mic_pcm: np.ndarray) -> list[dict]:
    mic = PcmTrack(mic_pcm, pause_s=2.0)
    viewer = Viewer(url, mic=mic)
    rec = Recorder(viewer)
    viewer._read = rec.read  # the recorder takes the tracks
    await viewer.connect()
    samples = []
    t_start = time.monotonic()
    window_start = t_start
    n = 0
    while time.monotonic() - t_start < minutes * 60:
        await asyncio.sleep(window_start + every - time.monotonic())
        t1 = time.monotonic()
        frames = sum(1 for t in viewer.frames if window_start <= t < t1)
        n += 1
        sample = {"t_s": round(t1 - t_start, 1), "fps": round(frames / (t1 - window_start), 2),
                  "av_offset_ms": av_offset_ms(rec, window_start, t1),
                  "mouth_to_ear_ms": mouth_to_ear_ms(mic, rec, window_start, t1 - 1.0),
                  "ping_ms": await ping_ms(viewer, n), "loop_lag_p99_ms": await loop_lag_p99(viewer),
                  **process_stats(pid)}
        samples.append(sample)
        print(json.dumps(sample), flush=True)
        # Keep the last two windows only: an hour of envelopes and arrival times would be the leak we look for.
        keep = window_start - every
        rec.video = [x for x in rec.video if x[0] >= keep]
        rec.audio = [x for x in rec.audio if x[0] >= keep]
        rec.env_received = [x for x in rec.env_received if x[0] >= keep]
        viewer.frames = [t for t in viewer.frames if t >= keep]
        viewer.messages = viewer.messages[-50:]
        window_start = t1
    await viewer.close()
    return samples


def plot(samples: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([s["t_s"] for s in samples]) / 60
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    series = [("fps", "frames / s", None), ("av_offset_drift_ms", "A/V offset drift (ms)", (-40, 40)),
              ("mouth_to_ear_ms", "latency (ms)", None), ("rss_mb", "server RSS (MB)", None)]
    first = next((s["av_offset_ms"] for s in samples if s["av_offset_ms"] is not None), 0.0)
    for s in samples:
        s["av_offset_drift_ms"] = None if s["av_offset_ms"] is None else s["av_offset_ms"] - first
    for ax, (key, label, band) in zip(axes, series):
        y = np.array([np.nan if s[key] is None else s[key] for s in samples], dtype=float)
        ax.plot(t, y, marker=".", lw=1)
        if key == "mouth_to_ear_ms":
            ax.plot(t, [np.nan if s["ping_ms"] is None else s["ping_ms"] for s in samples], marker=".", lw=1,
                    label="control ping RTT")
            ax.plot(t, [np.nan if s.get("loop_lag_p99_ms") is None else s["loop_lag_p99_ms"] for s in samples],
                    marker=".", lw=1)
            ax.legend(["mouth to ear (audio)", "control ping RTT", "server event-loop lag p99"], loc="upper right",
                      fontsize=8)
        if band:
            ax.axhspan(*band, color="green", alpha=0.08)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def summarize(samples: list[dict]) -> dict:
    """The issue's three targets. Start and end are the medians of the first and the last tenth of the windows
    (at least one): RSS swings ±10 MB from window to window with the allocator's working set, and one window's
    A/V offset by a frame, so single windows would judge noise."""
    steady = samples[1:] or samples  # the first window includes connecting
    tenth = max(1, len(steady) // 10)
    offsets = [s["av_offset_ms"] for s in steady if s["av_offset_ms"] is not None]
    fps = np.array([s["fps"] for s in steady])
    half = max(1, len(fps) // 2)
    rss = np.array([s["rss_mb"] for s in steady])
    lat = [s["mouth_to_ear_ms"] for s in steady if s["mouth_to_ear_ms"] is not None]
    reference = float(np.median(offsets[:tenth])) if offsets else None
    rss_start, rss_end = float(np.median(rss[:tenth])), float(np.median(rss[-tenth:]))
    fps_start, fps_end = float(np.median(fps[:tenth])), float(np.median(fps[-tenth:]))
    drift = round(max(abs(o - reference) for o in offsets), 1) if offsets else None
    return {
        "windows": len(samples),
        "av_offset_drift_ms_max": drift,
        "fps_first_half": round(float(fps[:half].mean()), 2), "fps_second_half": round(float(fps[half:].mean()), 2)
        if len(fps) > half else None, "fps_min": round(float(fps.min()), 2),
        "fps_start": round(fps_start, 2), "fps_end": round(fps_end, 2),
        "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1), "rss_max_mb": float(rss.max()),
        "rss_growth_mb": round(rss_end - rss_start, 1),
        "mouth_to_ear_ms_median": float(np.median(lat)) if lat else None,
        "mouth_to_ear_ms_max": float(max(lat)) if lat else None,
        "verdict": {"av_offset_drift_le_40ms": drift is not None and drift <= 40.0,
                    "no_fps_decline": fps_end >= fps_start - 1.0,  # within a frame a second
                    "rss_growth_le_20mb": rss_end - rss_start <= 20.0},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds per sample window (default 30)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "soak",
                        help="writes OUT.json and OUT.png (default benchmarks/results/soak)")
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info}")
    with tempfile.TemporaryDirectory(prefix="avatar-rt-soak-") as tmp:
        pcm = speech_48k(Path(tmp))
        proc, url = start_server(tmp)
        try:
            samples = asyncio.run(soak(url, proc.pid, args.minutes, args.every, pcm))
        finally:
            proc.terminate()
            proc.wait(30)
    summary = summarize(samples)
    print(f"summary: {json.dumps(summary)}")
    for target, ok in summary["verdict"].items():
        print(f"{'PASS' if ok else 'FAIL'} {target}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": info, "minutes": args.minutes,
                                                         "every_s": args.every, "summary": summary,
                                                         "samples": samples}, indent=1))
    plot(samples, args.out.with_suffix(".png"),
         f"soak {args.minutes:g} min, {info['cpu']} ×{info['cores']}, {info['date']}")
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")
    return 0 if all(summary["verdict"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
