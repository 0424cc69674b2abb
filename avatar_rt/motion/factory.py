"""Which motion model drives the mouth: the trained lip-sync model when it is installed, else the loudness jaw."""

from __future__ import annotations

import functools
import logging

from avatar_rt.engines import EngineError, engine_path
from avatar_rt.errors import AvatarRtError
from avatar_rt.motion.loudness_jaw import LoudnessJawModel

MOTION_KINDS = ("auto", "lipsync", "loudness")
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _lipsync_session():
    """One ONNX Runtime session for every stream: `run` is thread-safe, the state lives in each stream."""
    from avatar_rt.motion.lipsync import ENGINE_NAME, load_session

    return load_session(engine_path(ENGINE_NAME))


def lipsync_available() -> bool:
    from avatar_rt.motion.lipsync import ENGINE_NAME

    try:
        engine_path(ENGINE_NAME)
        return True
    except EngineError:
        return False


def make_motion_model(kind: str, fps: float):
    """A fresh streaming motion model for one session or render."""
    if kind not in MOTION_KINDS:
        raise AvatarRtError(f"unknown motion model {kind!r}; choose one of {', '.join(MOTION_KINDS)}")
    if kind == "loudness" or (kind == "auto" and not lipsync_available()):
        if kind == "auto":
            log.info("no trained lip-sync model in engines/: the loudness jaw drives the mouth")
        return LoudnessJawModel()
    from avatar_rt.motion.lipsync import LipSyncModel

    try:
        return LipSyncModel(fps, session=_lipsync_session())
    except EngineError as exc:
        raise AvatarRtError(f"the lip-sync model cannot be used: {exc}", code="engine_missing", status=503) from exc
