"""Choosing the backend: `--backend auto|cpu|cuda|ort-tensorrt|tensorrt`, and the process's current choice.

`auto` walks the backends best first and takes the first that can run here, logging every one it passed over
and why (e.g. "backend cpu: tensorrt: tensorrt is not importable; ort-tensorrt: onnxruntime 1.32.0 has no
TensorrtExecutionProvider; ..."). A backend asked for by name that cannot run is a `BackendUnavailable` naming
it and the reason. The choice is per process: every model this process opens afterwards (`open_model`) runs on
it, so the CLI chooses once at startup and no pipeline stage takes a backend argument.
"""

from __future__ import annotations

import logging
from pathlib import Path

from avatar_rt.engines.backend import Backend, BackendUnavailable, Runner
from avatar_rt.engines.ort_backend import CPU, CUDA, ORT_TENSORRT
from avatar_rt.engines.tensorrt_backend import TENSORRT

log = logging.getLogger("avatar_rt.engines")

BACKENDS: tuple[Backend, ...] = (TENSORRT, ORT_TENSORRT, CUDA, CPU)  # best first: the order `auto` tries
BACKEND_CHOICES = ("auto",) + tuple(b.name for b in BACKENDS)
_current: Backend = CPU


def by_name(name: str) -> Backend:
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_CHOICES)}")


def choose(name: str = "auto") -> tuple[Backend, str]:
    """The backend for `name` and one line saying why (for the startup log); raises BackendUnavailable."""
    if name != "auto":
        backend = by_name(name)
        reason = backend.available()
        if reason:
            raise BackendUnavailable(f"backend {name} is not available: {reason}")
        return backend, f"backend {name}: asked for with --backend"
    skipped = []
    for backend in BACKENDS:
        reason = backend.available()
        if reason is None:
            why = "; ".join(skipped) if skipped else "the best backend, and it is available"
            return backend, f"backend {backend.name} (auto): {why}"
        skipped.append(f"{backend.name}: {reason}")
    raise BackendUnavailable("no backend can run here: " + "; ".join(skipped))


def use(name: str = "auto") -> Backend:
    """Choose the backend for every model this process opens from now on, and log why."""
    global _current
    backend, why = choose(name)
    log.info(why)
    _current = backend
    return backend


def current() -> Backend:
    return _current


def open_model(path: Path, what: str, *, threads: int = 1, backend: Backend | None = None) -> Runner:
    """Open `path` on `backend` (default: the process's choice); EngineError names `what` if it cannot load."""
    return (backend or _current).open(Path(path), what, threads=threads)
