"""Phase-locks a session's frame clock to the arrival of the audio each frame is made from.

The frame loop ticks every 40 ms (25 fps) and each tick takes the next 40 ms slice of the received
audio. On a free-running clock the tick falls anywhere between two packet arrivals, so the slice's
newest sample waited up to a packet interval plus the jitter buffer's margin before anything used it
(`avatar-rt bench`: the `jitter` stage, 30 ms on a quiet loopback). Here the clock keeps its period
but slides its phase: every tick it compares when it was due with when the slice's newest sample
arrived, and

* when the tick was there before its audio (it waited for the packet), the clock moves later by
  that much at once: the frame already left that late, so the next interval stays one period (a
  tick that only began late, the event loop being busy, moves nothing: that is no clock error);
* when even the earliest tick of the last window (2 s) found its audio `guard` or more ahead, the
  clock moves earlier by at most `max_slew` per tick (1 ms: frames leave 39 ms apart for a while,
  their pts stay regular), until the least slack of the window is `guard`.

So the slack follows the worst arrival of the last two seconds: about a guard's worth on a clean
path, and as much as the arrivals need on a jittery one (they move the clock back at once).
The frame pts and the pairing of each frame with its own audio slice are not touched.
"""

from __future__ import annotations

from collections import deque


class FramePhase:
    def __init__(self, *, guard_s: float = 0.002, window: int = 50, min_history: int = 25,
                 max_slew_s: float = 0.001, max_retard_s: float = 0.04):
        self.guard = guard_s
        self.min_history = min_history  # ticks seen before the clock moves earlier
        self.max_slew = max_slew_s
        self.max_retard = max_retard_s
        self._slack: deque[float] = deque(maxlen=window)  # due − arrival of each slice's newest sample
        self.shifted_s = 0.0  # the clock's total move so far (+ later), for metrics and tests

    def forget(self) -> None:
        """The audio stream restarted (an underrun, a trim, a pause): what was learnt of its phase is stale."""
        self._slack.clear()

    def observe(self, due: float, started: float, ready: float | None) -> float:
        """A tick due at `due`, which began at `started` (later when the event loop was busy), took a slice whose
        newest sample arrived at `ready` (None: no received audio in it). Returns how far (s) to move the clock:
        positive = later."""
        if ready is None:
            self.forget()
            return 0.0
        waited = ready - max(due, started)
        if waited > 0:  # the tick was there first and waited for its audio: the clock moves later by as much
            shift = min(waited, self.max_retard)
            self._slack = deque((s + shift for s in self._slack), maxlen=self._slack.maxlen)
            self._slack.append(due + shift - ready)
        else:
            # A tick that began late (a busy loop) finds its audio in without the clock being early: it counts as
            # no slack at all (due − ready ≤ 0), so it holds the clock where it is but never moves it later.
            self._slack.append(due - ready)
            least = min(self._slack)
            if len(self._slack) < self.min_history or least <= self.guard:
                return 0.0
            shift = -min(least - self.guard, self.max_slew)
            self._slack = deque((s + shift for s in self._slack), maxlen=self._slack.maxlen)
        self.shifted_s += shift
        return shift
