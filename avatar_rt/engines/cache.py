"""Where built TensorRT engines live: one folder per (GPU model + compute capability, TensorRT version), one plan
per ONNX file's sha256 inside it, beside a JSON note of how it was built, and that folder's timing cache.

A plan runs only on the GPU and TensorRT version it was built for, and only for the exact ONNX file, hence the
key; a new GPU, a TensorRT upgrade or a retrained model each miss the cache and get a fresh build.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from avatar_rt.engines.gpu import Gpu

CACHE_ENV = "AVATAR_RT_ENGINE_CACHE"
TIMING_CACHE = "timing.cache"


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "avatar_rt" / "tensorrt"
    return Path(os.environ.get(CACHE_ENV, default))


@dataclass(frozen=True)
class EngineKey:
    gpu: Gpu
    tensorrt_version: str
    onnx_sha256: str

    @property
    def folder(self) -> Path:
        return cache_root() / f"{self.gpu.slug}-trt{self.tensorrt_version}"

    @property
    def plan(self) -> Path:
        return self.folder / f"{self.onnx_sha256}.plan"

    @property
    def note(self) -> Path:
        return self.folder / f"{self.onnx_sha256}.json"

    @property
    def timing_cache(self) -> Path:
        return self.folder / TIMING_CACHE


def write_plan(key: EngineKey, plan: bytes, note: dict) -> None:
    """Plan first, note last (atomically): a note means its plan is complete."""
    key.folder.mkdir(parents=True, exist_ok=True)
    tmp = key.plan.with_suffix(".plan.tmp")
    tmp.write_bytes(plan)
    tmp.replace(key.plan)
    tmp = key.note.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(note, indent=1, sort_keys=True))
    tmp.replace(key.note)


def read_note(key: EngineKey) -> dict | None:
    """The build note of a complete cached plan, or None when there is none."""
    if not (key.note.is_file() and key.plan.is_file()):
        return None
    try:
        return json.loads(key.note.read_text())
    except ValueError:
        return None
