"""Hostile input is answered, not logged as a crash.

A scanner's malformed request (a bad method, a broken header) is answered 400 by aiohttp, which then logs a
full traceback at ERROR: on a public port that buries real errors under noise. Likewise an SDP offer that aiortc
accepts and then trips over (duplicate mids) is refused with 400, but aiortc's own background connect task dies
with it and asyncio reports "Task exception was never retrieved". Both become one line at INFO; every other
error is logged as before.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("avatar_rt.server")


class _BadRequestFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and getattr(exc, "code", 500) < 500:
            log.info("malformed HTTP request refused (%s): %s", exc.code, str(exc.message).splitlines()[0][:120])
            return False
        return True


_filter = _BadRequestFilter()


def _is_aiortc_connect(context: dict) -> bool:
    task = context.get("future")
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    return coro is not None and "RTCPeerConnection" in getattr(coro, "__qualname__", "") and \
        "connect" in getattr(coro, "__qualname__", "")


def install(loop: asyncio.AbstractEventLoop) -> None:
    logger = logging.getLogger("aiohttp.server")
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if _is_aiortc_connect(context):
            log.info("a refused offer's connection task ended: %r", context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
