"""Read a received WebRTC track to its end: the one loop every client of the engine needs (the Python client's
adapters, the bench, the tests and benchmarks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiortc.mediastreams import MediaStreamError


async def received_frames(track) -> AsyncIterator:
    """Each frame `track.recv()` gives, until the track ends (aiortc raises MediaStreamError then)."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        yield frame
