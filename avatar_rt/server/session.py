"""One client session: a peer connection, its audio ingress, and the frame loop that paces it.

The frame loop is the session's clock. Every 1/fps seconds it takes exactly one
frame's worth of audio from the jitter buffer (silence if none came), runs the
pipeline on the shared render pool, and hands the frame and its audio slice to the
outgoing tracks. When the machine falls behind it skips rendering (the audio
keeps flowing) until it is back on time, so latency never accumulates.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatar_rt.audio.ingress import AudioIngress
from avatar_rt.audio.adaptive_jitter import AdaptiveJitterBuffer
from avatar_rt.edits.engine import EditEngine
from avatar_rt.edits.store import EditStore
from avatar_rt.errors import AvatarRtError
from avatar_rt.server import edit_api
from avatar_rt.pipeline import FramePipeline, OutputFrame
from avatar_rt.server.avatars import Avatar, AvatarStore
from avatar_rt.server.control import ControlChannel
from avatar_rt.server.frame_phase import FramePhase
from avatar_rt.server.metrics import SessionMetrics
from avatar_rt.server.rtp_audio import PacketClock, pass_audio_through, receiver_of
from avatar_rt.server.tracks import PipelineAudioTrack, PipelineVideoTrack
from avatar_rt.server.workers import edit_pool, render_pool

log = logging.getLogger(__name__)

# Past this much lateness the loop stops trying to catch up and re-anchors its clock.
MAX_CATCH_UP_S = 1.0
# How long a tick waits past its time for the packet completing its audio slice (the phase-locked clock aims
# just behind the arrivals, so it sometimes comes a little early); beyond it the slice underruns as before.
MAX_AUDIO_WAIT_S = 0.03
# The frame clock (`avatar-rt serve --frame-clock`): "free" ticks on its own; "audio" phase-locks each session's
# ticks to its received audio (server/frame_phase.py). "free" is the default: with "audio" the returned voice's
# delay moves with the clock and the loopback test's lips-vs-voice check failed half the time (2026-11-30).
FRAME_CLOCK = "free"


def build_pipeline(avatar: Avatar, fps: float, store: EditStore | None,
                   motion_model=None) -> tuple[EditEngine, FramePipeline]:
    """A session's edits (loaded from the store) and its frame pipeline (motion model, rig basis)."""
    edits = EditEngine(avatar.avatar_id, store)
    return edits, FramePipeline(avatar.portrait, fps, renderer=avatar.renderer, edits=edits, motion_model=motion_model)


class Session:
    @classmethod
    async def create(cls, avatar: Avatar, fps: float, store: EditStore | None, avatars: AvatarStore | None,
                     make_motion_model: Callable[[], object], *,
                     edit_rate: tuple[float, float] = (0.0, 1.0)) -> Session:
        """A session whose pipeline is built in a worker thread. The motion model and the rig basis take
        30-60 ms of CPU (200 ms on a loaded machine): on the event loop that held every other session's
        frames for as long, at each POST /v1/sessions (the stall watchdog, server/loop_lag.py, found it)."""
        def build() -> tuple[EditEngine, FramePipeline]:
            return build_pipeline(avatar, fps, store, make_motion_model())

        edits, pipeline = await asyncio.get_running_loop().run_in_executor(None, build)
        return cls(avatar, fps, store, avatars, edits=edits, pipeline=pipeline, edit_rate=edit_rate)

    def __init__(self, avatar: Avatar, fps: float, store: EditStore | None, avatars: AvatarStore | None, *,
                 edits: EditEngine, pipeline: FramePipeline, edit_rate: tuple[float, float] = (0.0, 1.0)):
        self.session_id = uuid.uuid4().hex
        self.avatar = avatar
        self.fps = fps
        self.state = "new"
        self.created = time.monotonic()
        self.pc = RTCPeerConnection()
        self.metrics = SessionMetrics()
        self.store = store
        self.avatars = avatars
        self._static_key = ""
        # The avatar's persisted edits come back with every new session (a reconnect included).
        self.edits, self.pipeline = edits, pipeline  # Session.create builds them
        self.ingress = AudioIngress()
        self.jitter = AdaptiveJitterBuffer()
        self.phase = FramePhase()  # the frame clock's phase, locked to the received audio's arrivals
        self._audio_arrived = asyncio.Event()
        self._jitter_events = (0, 0, 0)  # the jitter buffer's underruns, trimmed and dropped samples at the last tick
        self.video = PipelineVideoTrack(fps, on_sent=self.metrics.frame_sent, on_encoded=self.metrics.frame_encoded)
        self.audio = PipelineAudioTrack()
        self.control: ControlChannel | None = None
        self.edit_rate = edit_rate  # the control channel's edits: (per second, burst); (0, 1) is unlimited
        # A voice agent's link (avatar_rt.agent.attach) once one drives this session: then its segments, not the
        # microphone, are the session's audio.
        self.agent = None
        self._worker = render_pool()
        self._tasks: set[asyncio.Task] = set()
        self._closed = asyncio.Event()
        self.on_closed: list = []
        self._clock_started = False

    def describe(self) -> dict:
        return {
            "session_id": self.session_id,
            "state": self.state,
            "avatar": self.avatar.describe(),
            "fps": self.fps,
            "size": self.avatar.portrait.size,
            "lookahead_ms": self.pipeline.lookahead_ms,
        }

    def snapshot(self) -> dict:
        return {
            **self.metrics.snapshot(),
            "lookahead_ms": self.pipeline.lookahead_ms,
            "jitter_buffer_ms": round(1000.0 * self.jitter.level_samples / 16000, 1),
            "audio_underruns": self.jitter.underruns,
            "jitter_margin_ms": round(1000.0 * self.jitter.margin / 16000, 1),
            "audio_trimmed_ms": round(1000.0 * self.jitter.trimmed_samples / 16000, 1),
            "clock_shift_ms": round(1000.0 * self.phase.shifted_s, 1),  # the frame clock's phase lock, + later
            "transport_dropped_frames": self.video.dropped,  # replaced in the track queue: the transport lagged
        }

    def edit(self, kind: str, body: dict, *, from_http: bool = False) -> dict:
        """One edit-API message, waited for (the agent socket's few edits, whose protocol handler is synchronous);
        still carried out on the edit thread, so no two threads ever change one session's edits at once."""
        before, now = self.edits.version, self.pipeline.media_time
        reply = edit_pool().submit(edit_api.handle, kind, body, self.edits, self.store, now).result()
        self._edited(reply, before, from_http)
        return reply

    async def edit_async(self, kind: str, body: dict, *, from_http: bool = False) -> dict:
        """The same for HTTP and the datachannel, on the edit thread (workers.edit_pool): its SQLite commit (an
        fsync: p99 11 ms on the VM, more on a busy disk) and the text model never hold the event loop."""
        before, now = self.edits.version, self.pipeline.media_time
        reply = await asyncio.get_running_loop().run_in_executor(
            edit_pool(), edit_api.handle, kind, body, self.edits, self.store, now)
        self._edited(reply, before, from_http)
        return reply

    def _edited(self, reply: dict, before: int, from_http: bool) -> None:
        """On the event loop, after an edit: tell the page of an agent's change; re-bake static edits."""
        if from_http and self.edits.version != before and self.control is not None:
            # A page showing the controls learns of changes an agent made over HTTP.
            self.control.send({**reply, "type": "edit.changed"})
        if self.edits.state.static_key() != self._static_key and self.avatars is not None \
                and not self._closed.is_set():
            # Static edits re-bake the portrait off the frame path; frames go on meanwhile.
            self._spawn(self._rebake(fade_s=0.3))

    async def prepare(self) -> None:
        """Bake the avatar's persisted static edits before the first frame."""
        if self.edits.state.static_key():
            await self._rebake(fade_s=0.0)

    async def _rebake(self, fade_s: float) -> None:
        state = self.edits.state
        key = state.static_key()
        try:
            variant = await self.avatars.variant(self.avatar, state.attributes, state.appearance, key,
                                                 state.mouth_rest)
        except Exception:  # a failed bake keeps the current look; the edit itself is stored
            log.exception("session %s: baking static edits failed", self.session_id[:8])
            return
        if self.edits.state.static_key() != key:
            return  # superseded by a newer edit, whose own bake follows
        self._static_key = key
        self.pipeline.swap_portrait(variant.portrait, variant.renderer, fade_s)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        if self.state != "new":
            raise AvatarRtError("this session already has a connection; create a new session",
                                code="offer_already_made", status=409)
        self.state = "connecting"
        pc = self.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            # Every received track is read, even ones we do not use: an unread
            # aiortc track buffers without bound.
            receiver = receiver_of(pc, track)
            if receiver is not None and track.kind == "audio":
                pass_audio_through(receiver)  # each packet decoded as it arrives: our jitter buffer absorbs jitter
            self._spawn(self._consume(track, PacketClock(receiver) if receiver is not None else None))

        @pc.on("datachannel")
        def on_datachannel(channel) -> None:
            if channel.label == "control" and self.control is None:
                self.control = ControlChannel(channel, self.snapshot, self.edit_async, on_agent=self._agent_message,
                                              edit_rate=self.edit_rate)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("session %s: connection %s", self.session_id[:8], pc.connectionState)
            if pc.connectionState == "connected":
                self.state = "connected"
            elif pc.connectionState in ("failed", "closed"):
                await self.close()

        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc raises ValueError and friends on malformed SDP
            self.state = "new"
            raise AvatarRtError(f"the offer could not be applied: {exc}", code="bad_offer") from exc
        kinds = {t.kind for t in pc.getTransceivers()}
        if "video" not in kinds:
            raise AvatarRtError("the offer has no video section; offer to receive video", code="bad_offer")
        pc.addTrack(self.video)
        if "audio" in kinds:
            pc.addTrack(self.audio)
        try:
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:  # aiortc accepts some offers it cannot answer (duplicate mids, say): a bad offer
            self._spawn(self.close())  # its peer connection is half set up: this session is spent
            raise AvatarRtError(f"the offer could not be answered: {exc}; create a new session and offer again",
                                code="bad_offer") from exc
        self.start_clock()
        return pc.localDescription

    def start_clock(self) -> None:
        """Start the frame loop (once): at the first viewer, or when an agent attaches before any viewer."""
        if not self._clock_started:
            self._clock_started = True
            self._spawn(self._frame_loop())
            self._spawn(self._metrics_loop())

    def _agent_message(self, msg):
        from avatar_rt.agent.attach import control_message

        return control_message(self, msg)

    async def _consume(self, track: MediaStreamTrack, packets: PacketClock | None) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if track.kind == "audio" and self.agent is None:
                decoded = time.monotonic()
                packet_arrival = packets.arrival(frame.pts) if packets is not None else None
                if packet_arrival is not None:
                    self.metrics.packet_decoded(packet_arrival, decoded)
                for chunk in self.ingress.push_frame(frame, decoded):
                    self.jitter.push(chunk)
                self._audio_arrived.set()

    def _render_step(self, audio, arrival, render: bool, tick: float) -> tuple[OutputFrame | None, object]:
        out = self.pipeline.step(audio, arrival, render=render, tick=tick)
        if out is None or out.image is None:
            return out, None
        frame = PipelineVideoTrack.make_frame(out.image, out.index, self.fps)
        out.timings.converted = time.monotonic()
        return out, frame

    async def _audio_for_step(self, need: int, due: float, started: float) -> tuple:
        """The next slice of received audio; waits (until `due` + MAX_AUDIO_WAIT_S at most) for the packet
        that completes it when the phase-locked tick came a little early, then lets the clock's phase learn."""
        jitter = self.jitter
        if FRAME_CLOCK != "audio":
            audio, arrival = jitter.pop(need)
            return audio, arrival, 0.0
        while jitter.short_of(need) and time.monotonic() < due + MAX_AUDIO_WAIT_S:
            self._audio_arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._audio_arrived.wait(), due + MAX_AUDIO_WAIT_S - time.monotonic())
        audio, arrival = jitter.pop(need)
        events = (jitter.underruns, jitter.trimmed_samples, jitter.dropped_samples)
        if events != self._jitter_events:
            # Audio missed, trimmed or dropped since the last tick: the stream's timing against the clock changed.
            self._jitter_events = events
            self.phase.forget()
            return audio, arrival, 0.0
        return audio, arrival, self.phase.observe(due, started, arrival)

    async def _frame_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        # time.monotonic, not loop.time(): received audio is stamped with it (and uvloop's is cached, in ms).
        anchor = time.monotonic()
        n = 0
        try:
            while not self._closed.is_set():
                due = anchor + n * period
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                started = time.monotonic()
                if started - due > MAX_CATCH_UP_S:
                    anchor, due = started - n * period, started
                    self.phase.forget()
                if self.agent is not None:
                    audio, arrival = self.agent.pull(self.pipeline.samples_for_step()), None
                else:
                    audio, arrival, shift = await self._audio_for_step(self.pipeline.samples_for_step(), due, started)
                    anchor += shift
                late = time.monotonic() - due  # a wait for the audio counts: the frame leaves that much later
                render = late < 1.5 * period
                out, video_frame = await loop.run_in_executor(
                    self._worker, functools.partial(self._render_step, audio, arrival, render, time.monotonic()))
                n += 1
                if out is None:
                    continue
                if self.agent is not None:  # a frame pulled before a barge-in leaves silent
                    out.audio = self.agent.frame_out(out.audio, out.index / self.fps)
                self.metrics.speech = out.speech
                if self.control is not None:
                    self.control.push_motion(out.index, self.fps, out.params)
                self.audio.put(out.audio)
                if video_frame is not None:
                    self.video.put(video_frame, out.timings)
                else:
                    self.metrics.frames_dropped += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must end this session only, loudly
            log.exception("session %s: frame loop failed", self.session_id[:8])
            await self.close()

    async def _metrics_loop(self) -> None:
        while not self._closed.is_set():
            await asyncio.sleep(1.0)
            if self.control is not None:
                self.control.push_metrics()

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.state = "closed"
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()
        for callback in self.on_closed:
            callback(self)
