"""One interface for every way the runtime runs an ONNX model: a `Backend` opens a model file into a `Runner`.

Backends (registered in avatar_rt.engines.select, best first): native TensorRT engines (`tensorrt`), ONNX
Runtime's TensorRT execution provider (`ort-tensorrt`), its CUDA provider (`cuda`), and its CPU provider (`cpu`,
the default and the only one on a machine without an NVIDIA GPU). A runner takes named inputs and returns named
outputs as NumPy arrays, so a pipeline stage never knows which backend it runs on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from avatar_rt.engines.manifest import EngineError

Dim = int | str | None  # a literal size, a symbolic dimension's name, or unknown


class BackendUnavailable(EngineError):
    """The backend asked for cannot run on this machine; the message says why (a startup error, not a crash)."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the model file declares it."""

    name: str
    shape: tuple[Dim, ...]
    dtype: np.dtype


@runtime_checkable
class Runner(Protocol):
    """A model opened on a backend. `run` is safe to call from several threads (each call is independent)."""

    backend: str  # the backend's name, e.g. "cpu"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str]  # the ONNX file's metadata_props (the exporters record model facts there)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Named inputs in, the named `outputs` (default: all) out."""
        ...


class Backend(Protocol):
    name: str

    def available(self) -> str | None:
        """None when this backend can run here, else the reason it cannot (one line, for logs and errors)."""
        ...

    def open(self, path: Path, what: str, *, threads: int = 1) -> Runner:
        """Open the model file at `path` (`what` names it in errors); raises EngineError if it cannot be loaded."""
        ...


def input_names(runner: Runner) -> set[str]:
    return {spec.name for spec in runner.inputs}
