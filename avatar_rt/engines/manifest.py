"""The shipped ONNX models: engines/manifest.json, and paths to model files whose sha256 has been checked.

The manifest (written by the exporters in export/, e.g. `python -m export.warp_graph`)
has one entry per model, keyed by name: version, file, sha256, opset, inputs and
outputs with dtypes and shapes, and a description. `engine_path(name)` returns the
model's file only if it is there and its hash matches the manifest, so a runtime
never loads a model that is stale, truncated or swapped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ENGINES_DIR_ENV = "AVATAR_RT_ENGINES_DIR"  # models and manifest elsewhere (a deployment's model volume)
ENGINES_DIR = Path(os.environ.get(ENGINES_DIR_ENV) or Path(__file__).resolve().parents[2] / "engines")
MANIFEST_NAME = "manifest.json"


class EngineError(RuntimeError):
    """A shipped model is missing, unknown to the manifest, or not the file the manifest describes."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(engines_dir: Path | None = None) -> dict:
    """The parsed manifest: {"format": 1, "engines": {name: entry}}."""
    path = (engines_dir or ENGINES_DIR) / MANIFEST_NAME
    if not path.is_file():
        raise EngineError(f"engine manifest not found: {path} (rebuild with `python -m export.warp_graph`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise EngineError(f"engine manifest {path} is unreadable: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("engines"), dict):
        raise EngineError(f"engine manifest {path} has no 'engines' table")
    return data


def engine_entry(name: str, engines_dir: Path | None = None) -> dict:
    engines = load_manifest(engines_dir)["engines"]
    if name not in engines:
        known = ", ".join(sorted(engines)) or "none"
        raise EngineError(f"no engine named {name!r} in the manifest (known: {known})")
    return engines[name]


def engine_path(name: str, engines_dir: Path | None = None) -> Path:
    """Path of the model file for `name`, after checking it exists and its sha256 matches the manifest."""
    root = engines_dir or ENGINES_DIR
    entry = engine_entry(name, root)
    path = root / entry["file"]
    if not path.is_file():
        raise EngineError(f"engine {name!r}: file {path} is missing (rebuild with its exporter in export/)")
    actual = sha256(path)
    if actual != entry["sha256"]:
        raise EngineError(f"engine {name!r}: {path} has sha256 {actual}, the manifest says {entry['sha256']}: "
                          "the file is corrupt or stale (rebuild it and its manifest entry with its exporter)")
    return path
