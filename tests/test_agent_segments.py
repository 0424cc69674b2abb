"""The agent segment player: exactly one playback.finished per segment, positions equal to the audio sent.

The player runs here exactly as the session drives it: one `pull` per frame, a delay line of
`lookahead` frames standing in for the motion model's, and `frame_sent` when a frame leaves; a
frame pulled before a clear is sent as silence, as the session does.
"""

from __future__ import annotations

import random
from collections import Counter, deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatar_rt.agent.segments import AGENT_STATES, SegmentError, SegmentPlayer

FRAME = 640  # 40 ms at 16 kHz: one 25 fps frame


class Harness:
    """A session's frame loop in miniature: pull, delay, send; records what was sent and every event."""

    def __init__(self, lookahead: int = 2, max_buffer_s: float = 120.0):
        self.events: list[dict] = []
        self.player = SegmentPlayer(self.events.append, max_buffer_s=max_buffer_s)
        self.delay: deque = deque()
        self.lookahead = lookahead
        self.sent_by_value: Counter = Counter()
        self.frames_sent = 0

    def tick(self) -> None:
        self.delay.append(self.player.pull(FRAME))
        if len(self.delay) > self.lookahead:
            pulled = self.delay.popleft()
            audio = pulled.audio if self.player.frame_sent() else np.zeros(FRAME, np.int16)
            values, counts = np.unique(audio[audio != 0], return_counts=True)
            self.sent_by_value.update(dict(zip(values.tolist(), counts.tolist())))
            self.frames_sent += 1

    def finished(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for e in self.events:
            if e["type"] == "playback.finished":
                out.setdefault(e["id"], []).append(e)
        return out


def run_random_session(seed: int, n_segments: int, p_clear: float, p_disconnect: float, lookahead: int,
                       burst: float) -> None:
    rng = random.Random(seed)
    h = Harness(lookahead=lookahead, max_buffer_s=30.0)
    value_of: dict[str, int] = {}
    started = 0
    errors = 0
    while started < n_segments:
        op = rng.random()
        if op < 0.15:
            sid = f"s{started}"
            value_of[sid] = started + 1  # each segment's samples carry its own value, to count what was sent
            h.player.start(sid)
            started += 1
        elif op < 0.55:
            if h.player._open is not None:
                n = rng.choice([1, 7, 160, 640, 1600, int(FRAME * burst)])
                sid = h.player._open.id
                try:
                    h.player.push(np.full(n, value_of[sid], np.int16))
                except SegmentError as exc:
                    assert exc.code == "buffer_full"
                    errors += 1
            else:  # push with nothing open: a clear error, nothing changes
                with pytest.raises(SegmentError) as info:
                    h.player.push(b"\x01\x00")
                assert info.value.code in ("push_after_end", "no_open_segment")
        elif op < 0.65:
            if h.player._open is not None:
                h.player.end(h.player._open.id)
            else:
                with pytest.raises(SegmentError):
                    h.player.end(f"nope{rng.randrange(10)}")
        elif op < 0.65 + p_clear:
            h.player.clear()
        elif op < 0.65 + p_clear + p_disconnect:
            h.player.disconnect()
        elif op < 0.72 + p_clear + p_disconnect:
            h.player.set_state(rng.choice(AGENT_STATES))
        else:
            for _ in range(rng.choice([1, 1, 2, 5])):
                h.tick()
    # The agent ends what it opened; everything queued plays out.
    if h.player._open is not None:
        h.player.end(h.player._open.id)
    for _ in range(int(h.player.buffered_samples / FRAME) + lookahead + 3):
        h.tick()

    finished = h.finished()
    assert set(finished) == set(value_of), "every started segment finishes"
    assert all(len(v) == 1 for v in finished.values()), "exactly once"
    for sid, (event,) in finished.items():
        assert event["position_samples"] == h.sent_by_value[value_of[sid]], sid
        assert event["position_s"] == pytest.approx(event["position_samples"] / 16000, abs=1e-6)
    # Started events: at most one per segment, only for segments with audio sent, and before their finished.
    started_events = [e["id"] for e in h.events if e["type"] == "playback.started"]
    assert len(started_events) == len(set(started_events))
    assert set(started_events) == {sid for sid in value_of if h.sent_by_value[value_of[sid]] > 0}
    order = {(e["type"], e.get("id")): i for i, e in enumerate(h.events)}
    for sid in started_events:
        assert order[("playback.started", sid)] < order[("playback.finished", sid)]
    # Nothing stuck: no segment, no buffered audio, not speaking.
    assert h.player.active_ids == [] and h.player.buffered_samples == 0
    assert h.player.state != "speaking"
    assert sum(h.sent_by_value.values()) == h.player.samples_sent


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), p_clear=st.floats(0.0, 0.08), p_disconnect=st.floats(0.0, 0.02),
       lookahead=st.integers(0, 3), burst=st.floats(0.5, 6.0))
def test_500_segment_runs_finish_each_segment_exactly_once(seed, p_clear, p_disconnect, lookahead, burst):
    run_random_session(seed, 500, p_clear, p_disconnect, lookahead, burst)


def test_a_segment_plays_at_real_time_and_reports_when_its_first_frame_leaves():
    h = Harness(lookahead=2)
    h.player.start("a")
    h.player.push(np.full(16000, 5, np.int16))  # 1 s pushed at once: 25 frames
    h.player.end("a")
    h.tick()
    h.tick()
    assert not [e for e in h.events if e["type"].startswith("playback")], "nothing has left the delay line yet"
    h.tick()
    assert [e for e in h.events if e["type"] == "playback.started"] == [{"type": "playback.started", "id": "a"}]
    for _ in range(23):  # frames 2..24 of 25
        h.tick()
    assert "a" not in h.finished()
    assert h.player.state == "speaking"
    h.tick()
    (done,) = h.finished()["a"]
    assert done["position_s"] == 1.0 and done["interrupted"] is False
    assert h.player.state == "idle"


def test_clear_finishes_playing_and_queued_segments_with_the_audio_actually_sent():
    h = Harness(lookahead=2)
    for sid in ("a", "b"):
        h.player.start(sid)
        h.player.push(np.full(8000, 3, np.int16))
        h.player.end(sid)
    h.player.start("c")  # never gets audio, never starts
    for _ in range(6):  # 6 pulled, 4 sent
        h.tick()
    assert h.player.clear() == 3
    finished = h.finished()
    assert finished["a"][0]["position_samples"] == 4 * FRAME and finished["a"][0]["interrupted"]
    assert finished["b"][0]["position_samples"] == 0 and finished["b"][0]["interrupted"]
    assert finished["c"][0]["position_samples"] == 0
    before = dict(h.sent_by_value)
    for _ in range(5):
        h.tick()
    assert dict(h.sent_by_value) == before, "no audio of a cleared segment is sent after its finished"
    assert h.player.state == "idle"


@pytest.mark.parametrize("rate", [22050, 24000, 48000])
def test_other_rates_are_resampled_to_the_pipeline_rate(rate):
    h = Harness(lookahead=1)
    h.player.configure(rate)
    t = np.arange(rate) / rate
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    h.player.start("tone")
    for i in range(0, rate, 4410):  # TTS-sized chunks
        h.player.push(tone[i:i + 4410].tobytes())
    h.player.end("tone")
    for _ in range(30):
        h.tick()
    (done,) = h.finished()["tone"]
    assert done["position_s"] == pytest.approx(1.0, abs=0.002)


def test_protocol_errors_are_clear_and_change_nothing():
    h = Harness()
    with pytest.raises(SegmentError, match="before any segment.start") as info:
        h.player.push(b"\x00\x00")
    assert info.value.code == "no_open_segment"
    with pytest.raises(SegmentError) as info:
        h.player.configure(44100)
    assert info.value.code == "bad_rate" and "16000, 22050, 24000, 48000" in info.value.message
    h.player.configure(24000)
    with pytest.raises(SegmentError) as info:
        h.player.configure(16000)
    assert info.value.code == "wrong_rate"
    with pytest.raises(SegmentError) as info:
        h.player.start("x", sample_rate=48000)
    assert info.value.code == "wrong_rate"
    h.player.start("x")
    with pytest.raises(SegmentError) as info:
        h.player.push(b"\x00\x00\x00")
    assert info.value.code == "odd_byte_count"
    with pytest.raises(SegmentError) as info:
        h.player.end("y")
    assert info.value.code == "unknown_segment"
    with pytest.raises(SegmentError) as info:
        h.player.start("x")
    assert info.value.code == "duplicate_segment"
    h.player.end("x")
    with pytest.raises(SegmentError) as info:
        h.player.push(b"\x00\x00")
    assert info.value.code == "push_after_end" and "'x'" in info.value.message
    with pytest.raises(SegmentError) as info:
        h.player.set_state("sleeping")
    assert info.value.code == "bad_state"
    assert h.finished()["x"][0]["interrupted"] is False  # the valid segment still finished, once


def test_the_buffer_is_bounded_and_says_so():
    h = Harness(max_buffer_s=2.0)
    h.player.start("long")
    h.player.push(np.full(30000, 1, np.int16))
    with pytest.raises(SegmentError) as info:
        h.player.push(np.full(4000, 1, np.int16))
    assert info.value.code == "buffer_full" and "2 s" in info.value.message
    assert h.player.buffered_samples == 30000, "the refused chunk was not half-kept"
    h.player.push(np.full(2000, 1, np.int16))  # under the bound again: accepted


def test_states_follow_the_agent_and_a_barge_in_listens():
    h = Harness()
    seen = lambda: [e["state"] for e in h.events if e["type"] == "agent.state"]  # noqa: E731
    h.player.set_state("listening")
    h.player.set_state("thinking")
    h.player.start("a")
    h.player.push(np.full(1600, 1, np.int16))
    assert h.player.state == "speaking"
    h.player.clear()
    assert seen() == ["listening", "thinking", "speaking", "thinking"]
    h.player.set_state("speaking")  # declared speaking with nothing to play is not stuck in speaking
    assert h.player.state == "listening"
