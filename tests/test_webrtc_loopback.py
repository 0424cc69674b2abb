"""End to end over real WebRTC: an aiortc client speaks to the server and watches the avatar.

The client sends espeak-ng speech as a live microphone would (20 ms frames on the
wall clock, then silence), receives the avatar's video and voice, and checks what
a user would notice: a smooth frame rate, a mouth that moves with speech and
rests in silence, and a voice that is the same speech, delayed by the same
constant as the lips.
"""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from rtc_client import RATE, run_call


def mouth_opening(frames: list[np.ndarray]) -> np.ndarray:
    """Inner-lip gap (landmarks 13↔14) per frame, in inter-ocular distances, re-detected by MediaPipe."""
    from avatar_rt.avatar import landmarks as lm
    from avatar_rt.avatar.reference import detect_faces

    out = []
    for frame in frames:
        # In colour, as a viewer sees it: closed lips meet along a colour edge more than a luma one, and on
        # luma alone MediaPipe read the closed rest mouth of the bundled portrait 0.00-0.06 IOD open.
        faces = detect_faces(cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_I420))
        if not faces:
            out.append(np.nan)
            continue
        p = faces[0]
        out.append((p[14, 1] - p[13, 1]) / lm.inter_ocular(p))
    series = np.array(out)
    assert np.isfinite(series).mean() > 0.95, "the face was lost in the received video"
    return np.where(np.isfinite(series), series, np.nanmedian(series))


def envelope(pcm: np.ndarray, hop: int) -> np.ndarray:
    n = len(pcm) // hop
    x = pcm[: n * hop].astype(np.float64).reshape(n, hop)
    return np.sqrt((x**2).mean(axis=1))


def best_lag(reference: np.ndarray, signal: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag L (in samples of these series) maximising corr(reference[k], signal[k + L])."""
    best = (0, -1.0)
    for lag in range(0, max_lag):
        n = min(len(reference), len(signal) - lag)
        a, b = reference[:n], signal[lag:lag + n]
        if len(a) < 10 or a.std() == 0 or b.std() == 0:
            continue
        c = float(np.corrcoef(a, b)[0, 1])
        if c > best[1]:
            best = (lag, c)
    return best


@pytest.mark.slow
def test_avatar_speaks_back_in_sync(server, speech_16k):
    pcm, spans = speech_16k
    got = asyncio.run(run_call(server.base_url, pcm, seconds=len(pcm) / RATE + 1.0))
    video, audio, t0 = got["video"], got["audio"], got["mic_start"]
    assert video and audio, "no media received"

    # 1. Frame rate: at least 24 fps over a 10 s window.
    times = np.array([t for t, _ in video])
    window = times[(times >= times[0] + 0.5) & (times <= times[0] + 10.5)]
    fps = (len(window) - 1) / (window[-1] - window[0])
    print(f"received {len(video)} frames; {fps:.2f} fps over 10 s")
    assert fps >= 24.0

    # 2. The returned voice is the sent speech, delayed by a constant.
    recv_pcm = np.concatenate([a for _, a in audio]).astype(np.float64)
    print(f"received {len(recv_pcm) / RATE:.2f} s of audio in {len(audio)} frames")
    recv_t0 = audio[0][0] - len(audio[0][1]) / RATE  # wall time of the first received sample
    env_hop = 160  # 10 ms
    sent_env, recv_env = envelope(pcm, env_hop), envelope(recv_pcm.astype(np.int16), env_hop)
    lag, corr = best_lag(sent_env, recv_env, max_lag=300)
    audio_delay = recv_t0 + lag * env_hop / RATE - t0
    half = len(sent_env) // 2
    lag1, c1 = best_lag(sent_env[:half], recv_env, 300)
    lag2, c2 = best_lag(sent_env[half:], recv_env[half:], 300)
    print(f"audio: lag {lag * 10} ms (corr {corr:.2f}); halves {lag1 * 10} / {lag2 * 10} ms; "
          f"mic→speaker delay {audio_delay * 1000:.0f} ms")
    assert corr > 0.8, "the returned audio does not match the sent speech"
    assert abs(lag1 - lag2) <= 2, "the audio delay drifted within the call"

    # 3. The mouth moves during speech and is still in silence: MediaPipe re-detects
    #    the inner-lip gap on every received frame (so idle head motion does not count).
    gap = mouth_opening([f for _, f in video])
    # Frame k shows the stimulus at (arrival - audio_delay) on the sender's clock.
    stim_t = times - t0 - audio_delay
    in_speech = np.zeros(len(video), dtype=bool)
    in_silence = np.zeros(len(video), dtype=bool)
    for s, e in spans:
        in_speech |= (stim_t > s + 0.2) & (stim_t < e - 0.2)
    gaps = [(0.3, spans[0][0] - 0.3), (spans[0][1] + 0.6, spans[1][0] - 0.3)]
    for s, e in gaps:
        in_silence |= (stim_t > s) & (stim_t < e)
    speech_gap, silence_gap = gap[in_speech], gap[in_silence]
    print(f"inner-lip gap (IOD): speech median {np.median(speech_gap):.3f} p90 {np.percentile(speech_gap, 90):.3f} "
          f"sd {speech_gap.std():.3f}; silence median {np.median(silence_gap):.3f} sd {silence_gap.std():.3f} "
          f"({in_speech.sum()} speech / {in_silence.sum()} silent frames)")
    assert in_speech.sum() > 50 and in_silence.sum() > 30
    assert np.percentile(speech_gap, 90) - np.median(silence_gap) > 0.08, "the mouth does not open in speech"
    assert np.percentile(silence_gap, 95) - np.percentile(silence_gap, 5) < 0.05, "the mouth moves in silence"
    assert speech_gap.std() > 3 * silence_gap.std()
    motion = gap

    # 4. Lips and voice line up: the mouth-opening series peaks against the
    #    speech envelope at the same delay as the voice (within two frames).
    grid = np.arange(-0.3, 0.31, 0.01)
    corrs = []
    for d in grid:
        shifted = np.interp(times - t0 - audio_delay - d, np.arange(len(sent_env)) * env_hop / RATE, sent_env)
        corrs.append(np.corrcoef(shifted, motion)[0, 1])
    offset = grid[int(np.argmax(corrs))]
    print(f"lips vs voice: best extra offset {offset * 1000:+.0f} ms (corr {max(corrs):.2f}; at ±300 ms "
          f"{corrs[0]:.2f} / {corrs[-1]:.2f}, lowest {min(corrs):.2f})")
    # A phonetic mouth follows the loudness only loosely (it shuts on loud p/b/m, rounds on quiet oo): measured
    # 0.46-0.51 at the peak and 0.13-0.19 at ±300 ms on this clip, with the 2026-11-22 and the 2026-11-28
    # models alike. What must hold is a clear peak, near zero extra offset.
    assert max(corrs) > 0.4 and max(corrs) - max(corrs[0], corrs[-1]) > 0.2, "the mouth does not follow the voice"
    assert -0.08 <= offset <= 0.08, "the lips are not in sync with the returned voice"

    # 5. The control channel answered the ping, pushed metrics, and refused bad input.
    kinds = [m["type"] for m in got["messages"]]
    assert "pong" in kinds
    metrics = [m for m in got["messages"] if m["type"] == "metrics"]
    assert metrics and metrics[-1]["fps"] > 20
    assert any(m["type"] == "error" and m["code"] == "bad_message" for m in got["messages"])

    # 6. A 3D client that subscribed gets every frame's blendshapes, and the jaw moves with the speech.
    motion = [m for m in got["messages"] if m["type"] == "motion"]
    assert len(motion) > 0.9 * len(video), f"{len(motion)} motion messages for {len(video)} frames"
    frames = [m["frame"] for m in motion]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    jaw = np.array([m["arkit"]["jawOpen"] for m in motion])
    assert len(motion[0]["arkit"]) == 52 and len(motion[0]["visemes"]) == 15
    assert jaw.max() > 0.3 and np.median(jaw) < 0.2, "jawOpen should open in speech and rest in silence"
