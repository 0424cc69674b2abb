"""The agent's segment player: TTS audio in bursts → one frame's slice at a time, with exact playback events.

A voice agent pushes each reply as a *segment* (`start(id)` … `push(pcm)` … `end(id)`),
usually faster than real time. The session's frame loop pulls exactly one frame's
worth of 16 kHz audio per tick (`pull`), so the reply plays at real time on the one
media clock. The pipeline holds audio back for its motion-model lookahead before the
frame leaves; `frame_sent` tells the player that the oldest pulled slice has left, and
only then do `playback.started` / the positions advance, so events describe what the
viewer was actually sent.

Invariant 4 lives here: every segment that was started gets exactly one
`playback.finished{id, position_s, interrupted}` — played out, cleared (`clear`,
barge-in), or dropped by a disconnect, also when it never began to play.

The player is a synchronous state machine without I/O or clocks, so a property test
can drive thousands of operations through it; transports (the WebSocket, the
`control` datachannel, in-process adapters) only parse messages and call it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np

from avatar_rt.audio.ingress import SAMPLE_RATE
from avatar_rt.errors import AvatarRtError

SUPPORTED_RATES = (16_000, 22_050, 24_000, 48_000)
AGENT_STATES = ("idle", "listening", "thinking", "speaking")
# Audio queued ahead of the playhead, in seconds of 16 kHz audio. A 3×-faster-than-real-time TTS reply of a
# minute leaves ~40 s queued; past this bound a push is refused (its audio dropped) with `buffer_full`.
DEFAULT_MAX_BUFFER_S = 120.0
MAX_ID_CHARS = 128
# Finished ids remembered to tell "already finished" from "never started" (and to refuse reuse).
REMEMBERED_IDS = 4096

Event = dict
EventSink = Callable[[Event], None]


class SegmentError(AvatarRtError):
    """A protocol error the agent made; the player's state is unchanged by the message that caused it."""

    def __init__(self, message: str, code: str):
        super().__init__(message, code=code, status=400)


class _StreamResampler:
    """One segment's audio at the declared rate → 16 kHz, streaming; `flush` returns the filter's tail."""

    def __init__(self, rate: int):
        self.rate = rate
        self._av = None if rate == SAMPLE_RATE else av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._pts = 0

    def _run(self, frame) -> np.ndarray:
        parts = [f.to_ndarray().reshape(-1) for f in self._av.resample(frame)]
        return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        if self._av is None:
            return pcm
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += len(pcm)
        return self._run(frame)

    def flush(self) -> np.ndarray:
        return np.zeros(0, np.int16) if self._av is None else self._run(None)


@dataclass
class _Segment:
    id: str
    text: str | None
    resampler: _StreamResampler | None = None  # made at the first push: the rate may be declared until then
    chunks: deque = field(default_factory=deque)  # 16 kHz int16 arrays not yet pulled
    offset: int = 0  # samples already pulled from chunks[0]
    queued: int = 0  # samples not yet pulled
    pulled: int = 0  # samples pulled into the pipeline (not necessarily sent yet)
    sent: int = 0  # samples that left with a frame: the playback position
    ended: bool = False
    started_event: bool = False

    def take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0 and self.chunks:
            first = self.chunks[0]
            k = min(n, len(first) - self.offset)
            parts.append(first[self.offset:self.offset + k])
            self.offset += k
            n -= k
            if self.offset == len(first):
                self.chunks.popleft()
                self.offset = 0
        got = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        self.queued -= len(got)
        self.pulled += len(got)
        return got


@dataclass(frozen=True)
class Pulled:
    """One frame's audio for the pipeline, and the clear-generation it belongs to."""

    audio: np.ndarray  # int16, 16 kHz, exactly the samples asked for (silence-padded)
    generation: int
    speaking: bool  # some segment audio is in it


class SegmentPlayer:
    """Per-session agent audio: segments queued in order, played at the frame clock, events out through `emit`."""

    def __init__(self, emit: EventSink, *, max_buffer_s: float = DEFAULT_MAX_BUFFER_S):
        self._emit = emit
        self.max_buffer = int(max_buffer_s * SAMPLE_RATE)
        self.sample_rate: int | None = None  # declared once (config or the first segment.start); None = not yet
        self._queue: deque[_Segment] = deque()  # not finished, in play order; [0] plays first
        self._open: _Segment | None = None  # the segment pushes go to (started, not ended)
        self._finished_ids: deque[str] = deque(maxlen=REMEMBERED_IDS)
        self._finished_set: set[str] = set()
        # Pulled slices waiting in the pipeline's delay line: per frame (generation, [(segment, samples)]),
        # oldest first.
        self._in_flight: deque[tuple[int, list[tuple[_Segment, int]]]] = deque()
        self.generation = 0  # bumped by clear/disconnect: a frame pulled before it is stale
        self.declared_state = "idle"
        self._reported_state: str | None = None
        self.underrun_frames = 0  # frames where an open segment had no audio ready (the agent fell behind)
        self.samples_sent = 0  # segment samples that left with frames (all segments)

    # --- what transports call ----------------------------------------------------------------
    def configure(self, sample_rate: int) -> None:
        """Declare the PCM rate of every later push; it may be declared again only with the same value."""
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate not in SUPPORTED_RATES:
            raise SegmentError(f"sample_rate must be one of {', '.join(map(str, SUPPORTED_RATES))} (Hz), "
                               f"got {sample_rate!r}", "bad_rate")
        if self.sample_rate is not None and sample_rate != self.sample_rate:
            raise SegmentError(f"the sample rate was declared as {self.sample_rate} Hz and cannot change to "
                               f"{sample_rate}; open a new session for another rate", "wrong_rate")
        self.sample_rate = sample_rate

    def start(self, segment_id: str, *, text: str | None = None, sample_rate: int | None = None) -> None:
        """Open a segment; the audio pushed next belongs to it. An open segment is ended implicitly."""
        if not isinstance(segment_id, str) or not 1 <= len(segment_id) <= MAX_ID_CHARS:
            raise SegmentError(f'a segment "id" is a string of 1-{MAX_ID_CHARS} characters', "bad_segment_id")
        if text is not None and not isinstance(text, str):
            raise SegmentError('a segment\'s "text" must be a string', "bad_message")
        if segment_id in self._finished_set or any(s.id == segment_id for s in self._queue):
            raise SegmentError(f"segment id {segment_id!r} was already used in this session; ids are unique",
                               "duplicate_segment")
        if sample_rate is not None:
            self.configure(sample_rate)
        if self._open is not None:
            self._end(self._open)
        segment = _Segment(segment_id, text)
        self._queue.append(segment)
        self._open = segment
        self._update_state()

    def push(self, pcm: bytes | bytearray | memoryview | np.ndarray) -> None:
        """PCM16 little-endian mono at the declared rate, appended to the open segment."""
        if isinstance(pcm, np.ndarray):
            if pcm.dtype != np.int16 or pcm.ndim != 1:
                raise SegmentError("pushed arrays must be 1-D int16 (PCM16 mono)", "bad_audio")
            samples = pcm
        else:
            if len(pcm) % 2:
                raise SegmentError(f"PCM16 audio has an even number of bytes; got {len(pcm)} (a split sample?)",
                                   "odd_byte_count")
            samples = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.int16)
        if self._open is None:
            last = self._queue[-1].id if self._queue else (self._finished_ids[-1] if self._finished_ids else None)
            if last is not None:
                raise SegmentError(f"audio after segment {last!r} ended; send segment.start with a new id first",
                                   "push_after_end")
            raise SegmentError("audio before any segment.start; send segment.start{id} first", "no_open_segment")
        if not len(samples):
            return
        if self.sample_rate is None:
            self.sample_rate = SAMPLE_RATE  # audio before any declaration: the pipeline's own rate
        if self._open.resampler is None:
            self._open.resampler = _StreamResampler(self.sample_rate)
        out = self._open.resampler.push(samples)
        if self.buffered_samples + len(out) > self.max_buffer:
            raise SegmentError(
                f"more than {self.max_buffer / SAMPLE_RATE:.0f} s of audio is queued ahead of playback; this "
                f"chunk was dropped: push no faster than the queue drains (buffered_s in the state event)",
                "buffer_full")
        self._append(self._open, out)

    def end(self, segment_id: str) -> None:
        """No more audio for this segment: it finishes once what was pushed has played."""
        if self._open is not None and self._open.id == segment_id:
            self._end(self._open)
            return
        if segment_id in self._finished_set or any(s.id == segment_id for s in self._queue):
            raise SegmentError(f"segment {segment_id!r} has already ended", "segment_ended")
        raise SegmentError(f"no segment with id {str(segment_id)[:MAX_ID_CHARS]!r} was started", "unknown_segment")

    def clear(self) -> int:
        """Barge-in: drop every queued and playing segment, each finished as interrupted. Returns how many."""
        return self._drop_all()

    def disconnect(self) -> int:
        """The agent went away: like clear, and the face goes back to idle."""
        n = self._drop_all()
        self.declared_state = "idle"
        self._update_state()
        return n

    def set_state(self, state: str) -> None:
        if state not in AGENT_STATES:
            raise SegmentError(f"state must be one of {', '.join(AGENT_STATES)}; got {str(state)[:32]!r}", "bad_state")
        self.declared_state = state
        self._update_state()

    # --- what the frame loop calls -------------------------------------------------------------
    def pull(self, n: int) -> Pulled:
        """The next `n` samples of the timeline (segment audio, silence where none is ready)."""
        out = np.zeros(n, np.int16)
        spans: list[tuple[_Segment, int]] = []
        filled = 0
        for segment in list(self._queue):
            if filled == n:
                break
            got = segment.take(n - filled)
            if len(got):
                out[filled:filled + len(got)] = got
                spans.append((segment, len(got)))
                filled += len(got)
            if segment.queued == 0 and not segment.ended:
                if filled < n:
                    self.underrun_frames += 1  # the agent is behind real time: wait for it, silence meanwhile
                break
        self._in_flight.append((self.generation, spans))
        return Pulled(out, self.generation, bool(spans))

    def prime(self, frames: int) -> None:
        """The pipeline already holds `frames` slices of audio that did not come from this player (the agent
        joined a running session): their frames leave first, as silence."""
        self._in_flight.extendleft((-1, []) for _ in range(frames))

    def frame_sent(self, media_time_s: float | None = None) -> bool:
        """The oldest pulled slice left with its frame. False: it was pulled before a clear (or the player): the
        caller sends silence instead, so no audio of a cleared segment leaves after its playback.finished."""
        generation, spans = self._in_flight.popleft() if self._in_flight else (self.generation, [])
        if generation != self.generation:
            return False
        for segment, count in spans:
            if not segment.started_event:
                segment.started_event = True
                started = {"type": "playback.started", "id": segment.id}
                if media_time_s is not None:  # the frame's pts in seconds: the `at` of an edit timed to it
                    started["media_time_s"] = round(media_time_s, 4)
                self._emit(started)
            segment.sent += count
            self.samples_sent += count
        self._finish_played()
        return True

    # --- state -----------------------------------------------------------------------------------
    @property
    def buffered_samples(self) -> int:
        return sum(s.queued for s in self._queue)

    @property
    def active_ids(self) -> list[str]:
        return [s.id for s in self._queue]

    @property
    def state(self) -> str:
        """What the face shows: speaking while any segment is queued or playing, else what the agent declared."""
        if self._queue:
            return "speaking"
        return "listening" if self.declared_state == "speaking" else self.declared_state

    def describe(self) -> dict:
        return {"state": self.state, "declared_state": self.declared_state, "segments": self.active_ids,
                "buffered_s": round(self.buffered_samples / SAMPLE_RATE, 3), "sample_rate": self.sample_rate}

    # --- internals -------------------------------------------------------------------------------
    def _append(self, segment: _Segment, samples: np.ndarray) -> None:
        if len(samples):
            segment.chunks.append(np.array(samples, dtype=np.int16))
            segment.queued += len(samples)

    def _end(self, segment: _Segment) -> None:
        if segment.resampler is not None:
            self._append(segment, segment.resampler.flush())
        segment.ended = True
        if self._open is segment:
            self._open = None
        # A segment with nothing left in flight and nothing queued finishes now (in order, so only at the head).
        self._finish_played()

    def _finish_played(self) -> None:
        """Finish, in order, the segments at the head whose every sample has left."""
        while self._queue:
            head = self._queue[0]
            if not (head.ended and head.queued == 0 and head.sent == head.pulled):
                break
            self._queue.popleft()
            self._finish(head, interrupted=False)
        self._update_state()

    def _drop_all(self) -> int:
        dropped = list(self._queue)
        self._queue.clear()
        self._open = None
        self.generation += 1
        # Keep one (stale, empty) entry per frame still in the pipeline's delay line, so frame_sent stays aligned.
        self._in_flight = deque((-1, []) for _ in self._in_flight)
        for segment in dropped:
            self._finish(segment, interrupted=True)
        if dropped and self.declared_state == "speaking":
            self.declared_state = "listening"  # a barge-in means the customer is talking
        self._update_state()
        return len(dropped)

    def _finish(self, segment: _Segment, *, interrupted: bool) -> None:
        self._finished_ids.append(segment.id)
        self._finished_set.add(segment.id)
        if len(self._finished_set) > REMEMBERED_IDS:
            self._finished_set = set(self._finished_ids)
        self._emit({"type": "playback.finished", "id": segment.id,
                    "position_s": round(segment.sent / SAMPLE_RATE, 6), "position_samples": segment.sent,
                    "interrupted": interrupted})

    def _update_state(self) -> None:
        state = self.state
        if state != self._reported_state:
            self._reported_state = state
            self._emit({"type": "agent.state", "state": state})
