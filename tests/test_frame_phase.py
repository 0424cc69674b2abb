"""The phase-locked frame clock (avatar_rt/server/frame_phase.py) with the session's real jitter buffer, in
simulated time: 20 ms packets arrive (on time or jittered), a 40 ms slice is taken at every tick, and a tick
that finds its slice incomplete waits for it (at most 30 ms), as Session._audio_for_step does.

What a user would notice is asserted: how long each slice's newest sample sat before its tick (the server's
`jitter` stage), whether audio was lost or silence inserted (underruns), and how evenly frames leave."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from avatar_rt.audio.adaptive_jitter import AdaptiveJitterBuffer
from avatar_rt.audio.ingress import CHUNK_SAMPLES, AudioChunk
from avatar_rt.server.frame_phase import FramePhase
from avatar_rt.server.session import MAX_AUDIO_WAIT_S

PERIOD = 0.04
SLICE = 640
PACKET = 0.02


@dataclass
class Run:
    ticks: list[float] = field(default_factory=list)  # when each frame was made
    waited: list[float] = field(default_factory=list)  # the newest sample's age at its tick (s), speech ticks only
    audio: list[np.ndarray] = field(default_factory=list)
    jb: AdaptiveJitterBuffer | None = None


def simulate(seconds: float, delays: np.ndarray, *, locked: bool, start_offset: float = 0.013,
             stalls: list[tuple[float, float]] = ()) -> Run:
    """Packet k (two 10 ms chunks, samples counting up) leaves at k·20 ms and arrives delays[k] later (in order:
    a delayed packet holds back the ones behind it, as on a network path). During a stall [start, end) the
    server's event loop is busy: packets are stamped, and ticks begin, only at its end."""

    def loop_free(t: float) -> float:
        return next((end for start, end in stalls if start <= t < end), t)

    n_packets = int(seconds / PACKET)
    arrivals = np.maximum.accumulate(np.arange(n_packets) * PACKET + start_offset + delays[:n_packets])
    arrivals = np.array([loop_free(t) for t in arrivals])
    jb, phase, run = AdaptiveJitterBuffer(), FramePhase(), Run()
    run.jb = jb
    counter, next_packet, anchor, n, events = 0, 0, 0.0, 0, (0, 0, 0)

    def deliver(until: float) -> None:
        nonlocal counter, next_packet
        while next_packet < n_packets and arrivals[next_packet] <= until:
            for _ in range(2):
                jb.push(AudioChunk((np.arange(counter, counter + CHUNK_SAMPLES) % 20000 + 8000).astype(np.int16),
                                   float(arrivals[next_packet])))
                counter += CHUNK_SAMPLES
            next_packet += 1

    while True:
        due = anchor + n * PERIOD
        if due > arrivals[-1]:
            return run
        started = now = loop_free(due)
        deliver(now)
        while locked and jb.short_of(SLICE) and next_packet < n_packets and arrivals[next_packet] <= due + MAX_AUDIO_WAIT_S:
            now = float(arrivals[next_packet])  # the tick waits for the packet that completes its slice
            deliver(now)
        audio, arrival = jb.pop(SLICE)
        if locked:
            if (jb.underruns, jb.trimmed_samples, jb.dropped_samples) != events:
                events = (jb.underruns, jb.trimmed_samples, jb.dropped_samples)
                phase.forget()
            else:
                anchor += phase.observe(due, started, arrival)
        run.ticks.append(now)
        run.audio.append(audio)
        if arrival is not None:
            run.waited.append(now - arrival)
        n += 1


def played_in_order(run: Run) -> bool:
    """Every received sample came out once, in order (silence from start-up or underruns aside)."""
    x = np.concatenate(run.audio).astype(np.int64)
    x = x[x != 0]
    return bool(np.all(np.diff(x) % 20000 == 1))


def test_on_a_clean_path_a_frame_is_made_as_soon_as_its_audio_is_in():
    delays = np.zeros(2000)
    free, locked = simulate(20.0, delays, locked=False), simulate(20.0, delays, locked=True)
    late_free, late_locked = np.array(free.waited[-100:]), np.array(locked.waited[-100:])  # the last 4 s
    print(f"newest sample's wait for its tick, last 4 s: free-running {1000 * late_free.mean():.1f} ms, "
          f"phase-locked {1000 * late_locked.mean():.1f} ms (max {1000 * late_locked.max():.1f})")
    assert late_free.min() >= 0.015  # a packet interval plus the margin, give or take the tick's phase
    assert late_locked.max() <= 0.0035  # the guard (2 ms) and at most one slew step
    assert locked.jb.underruns == 0 and played_in_order(locked)
    intervals = np.diff(locked.ticks)
    assert intervals.min() >= PERIOD - 0.0011 and intervals.max() <= PERIOD + 1e-9  # at most 1 ms early, never late
    assert len(locked.ticks) >= len(free.ticks)  # 25 fps kept (plus the frames the slide gained)


def test_under_jitter_the_clock_falls_back_instead_of_dropping_audio():
    rng = np.random.default_rng(1)
    delays = np.concatenate([np.zeros(250), rng.uniform(0.0, 0.03, 1750)])  # 5 s clean, then 0-30 ms jitter
    run, free = simulate(40.0, delays, locked=True), simulate(40.0, delays, locked=False)
    waited, free_waited = np.array(run.waited), np.array(free.waited)
    print(f"0-30 ms jitter: phase-locked: underruns {run.jb.underruns}, newest sample's wait p50 "
          f"{1000 * np.median(waited[-500:]):.1f} / p95 {1000 * np.percentile(waited[-500:], 95):.1f} ms, frame interval "
          f"max {1000 * np.diff(run.ticks).max():.1f} ms; free-running: underruns {free.jb.underruns}, wait p50 "
          f"{1000 * np.median(free_waited[-500:]):.1f} / p95 {1000 * np.percentile(free_waited[-500:], 95):.1f} ms")
    assert run.jb.underruns == 0  # a tick waits for a late packet; the clock then moves back
    assert played_in_order(run)
    assert np.median(waited[-500:]) <= 0.03  # the slack follows the jitter, it does not run away
    intervals = np.diff(run.ticks)
    assert intervals.min() >= PERIOD - 0.0011 and intervals.max() <= PERIOD + MAX_AUDIO_WAIT_S + 1e-9
    assert np.mean(np.abs(intervals - PERIOD) <= 0.0011) >= 0.9  # most frames leave one period apart


def test_a_busy_event_loop_does_not_slow_the_clock():
    """Ticks that begin late because the loop was busy (and packets stamped late for the same reason) are no
    reason to move the clock later: frames keep coming at 25 fps on average and no audio is dropped."""
    rng = np.random.default_rng(2)
    stalls = [(t, t + rng.uniform(0.05, 0.15)) for t in np.arange(1.0, 20.0, 0.5)]
    run = simulate(20.0, np.zeros(1000), locked=True, stalls=stalls)
    print(f"ticks {len(run.ticks)} in 20 s, dropped {run.jb.dropped_samples} samples, underruns {run.jb.underruns}")
    assert len(run.ticks) >= 0.98 * 20.0 / PERIOD
    assert run.jb.dropped_samples == 0 and played_in_order(run)


def test_the_phase_moves_back_at_once_and_forward_slowly():
    phase = FramePhase(guard_s=0.002, min_history=3, max_slew_s=0.001)
    assert phase.observe(1.0, 1.0, 1.010) == pytest.approx(0.010)  # waited 10 ms for its audio: 10 ms later at once
    assert phase.observe(2.0, 2.0, 1.980) == 0.0  # the late arrival stays the window's worst: no move earlier
    assert phase.observe(3.0, 3.050, 3.020) == 0.0  # began 50 ms late (busy loop), audio already in: no move
    phase = FramePhase(guard_s=0.002, min_history=3, max_slew_s=0.001)
    assert [phase.observe(t, t, t - 0.020) for t in (1.0, 2.0)] == [0.0, 0.0]  # history first
    assert phase.observe(3.0, 3.0, 2.980) == pytest.approx(-0.001)  # then 1 ms a tick
    assert phase.observe(4.0, 4.0, 3.980) == pytest.approx(-0.001)
    phase.observe(5.0, 5.0, None)  # no audio: the phase learnt is forgotten
    assert phase.observe(6.0, 6.0, 5.900) == 0.0
