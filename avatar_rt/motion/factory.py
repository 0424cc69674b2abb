"""Which motion model drives the face: the trained lip sync when it is installed, else the loudness jaw.

`motion` picks what drives the mouth (auto: the lip-sync model if engines/ has it);
`behaviour` picks what drives head turns, brow raises and blinks: `auto` / `model`
use lip-sync stage B (the distilled student, 2 sampler steps) with the lip-sync model,
`teacher` the many-step teacher (for comparison; slower), `idle` the procedural idle
behaviour of avatar_rt/motion/idle.py.
"""

from __future__ import annotations

import functools
import logging

from avatar_rt.engines import EngineError, engine_entry, engine_path
from avatar_rt.errors import AvatarRtError
from avatar_rt.motion.loudness_jaw import LoudnessJawModel

MOTION_KINDS = ("auto", "lipsync", "loudness")
BEHAVIOUR_KINDS = ("auto", "model", "teacher", "idle")
log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _lipsync_session():
    """One ONNX Runtime session for every stream: `run` is thread-safe, the state lives in each stream."""
    from avatar_rt.motion.lipsync import ENGINE_NAME, load_session

    return load_session(engine_path(ENGINE_NAME))


@functools.lru_cache(maxsize=2)
def _behaviour_session(name: str):
    from avatar_rt.motion.behaviour import load_session

    return load_session(engine_path(name))


def make_behaviour(kind: str, *, seed: int = 0, steps: int | None = None):
    """Stage B for one stream, or None for the idle behaviour (`auto` without a shipped stage B)."""
    from avatar_rt.motion.behaviour import STUDENT, TEACHER, BehaviourModel

    if kind not in BEHAVIOUR_KINDS:
        raise AvatarRtError(f"unknown behaviour {kind!r}; choose one of {', '.join(BEHAVIOUR_KINDS)}")
    if kind == "idle":
        return None
    name = TEACHER if kind == "teacher" else STUDENT
    try:
        model = BehaviourModel(_behaviour_session(name), seed=seed, steps=steps)
        _check_pairing(model)
        return model
    except EngineError as exc:
        if kind == "auto":
            log.info("no lip-sync stage B in engines/ (%s): idle behaviour drives head and blinks", exc)
            return None
        raise AvatarRtError(f"the behaviour model cannot be used: {exc}", code="engine_missing", status=503) from exc


@functools.lru_cache(maxsize=4)
def _warn_once(message: str) -> None:
    log.warning(message)


def _check_pairing(model) -> None:
    """Stage B learned from one stage A's outputs; with another it still runs, but say so."""
    from avatar_rt.motion.lipsync import ENGINE_NAME

    try:
        shipped = engine_entry(ENGINE_NAME).get("sha256", "")
    except EngineError:
        return
    if model.stage_a_sha256 and shipped and model.stage_a_sha256 != shipped:
        _warn_once(f"lip-sync stage B was trained on stage A {model.stage_a_sha256[:12]}, engines/ has {shipped[:12]}: "
                   "retrain stage B (python -m export.lipsync.stage_b) for behaviour that matches")


@functools.lru_cache(maxsize=1)
def lipsync_available() -> bool:
    """Whether engines/ has a verified lip-sync model; asked once per process (the model loads once and every
    stream shares it), not at every new session: the sha256 of the file took up to 0.2 s on the event loop."""
    from avatar_rt.motion.lipsync import ENGINE_NAME

    try:
        engine_path(ENGINE_NAME)
        return True
    except EngineError:
        return False


def make_motion_model(kind: str, fps: float, behaviour: str = "auto", *, seed: int = 0):
    """A fresh streaming motion model for one session or render (`seed`: stage B's noise)."""
    if behaviour not in BEHAVIOUR_KINDS:
        raise AvatarRtError(f"unknown behaviour {behaviour!r}; choose one of {', '.join(BEHAVIOUR_KINDS)}")
    if kind not in MOTION_KINDS:
        raise AvatarRtError(f"unknown motion model {kind!r}; choose one of {', '.join(MOTION_KINDS)}")
    if kind == "loudness" or (kind == "auto" and not lipsync_available()):
        if kind == "auto":
            log.info("no trained lip-sync model in engines/: the loudness jaw drives the mouth")
        return LoudnessJawModel()
    from avatar_rt.motion.lipsync import LipSyncModel

    try:
        return LipSyncModel(fps, session=_lipsync_session(), behaviour=make_behaviour(behaviour, seed=seed))
    except EngineError as exc:
        raise AvatarRtError(f"the lip-sync model cannot be used: {exc}", code="engine_missing", status=503) from exc


def check_models(motion: str, behaviour: str) -> list[str]:
    """Open, at startup and on the chosen backend, every model `motion` / `behaviour` will use; returns their names.

    A model the manifest lists must load, even under `auto`: a missing or corrupt file the manifest promises is
    an error naming it (AvatarRtError, code engine_missing), not a silent fallback. Under `auto` a model the
    manifest does not list is simply not used (the loudness jaw, the idle behaviour), as per session.
    """
    from avatar_rt.motion.behaviour import STUDENT, TEACHER
    from avatar_rt.motion.lipsync import ENGINE_NAME

    def listed(name: str) -> bool:
        try:
            engine_entry(name)
            return True
        except EngineError:
            return False

    if motion == "loudness" or (motion == "auto" and not listed(ENGINE_NAME)):
        return []
    used = [ENGINE_NAME]
    try:
        _lipsync_session()
        if behaviour in ("model", "teacher") or (behaviour == "auto" and listed(STUDENT)):
            name = TEACHER if behaviour == "teacher" else STUDENT
            used.append(name)
            _behaviour_session(name)
    except EngineError as exc:
        raise AvatarRtError(f"model {used[-1]} cannot be used: {exc}", code="engine_missing", status=503) from exc
    return used
