"""Writes entries of engines/manifest.json (read back, with hash checks, by avatar_rt/engines.py).

One entry per shipped model, keyed by name; an exporter replaces its own entry
and leaves the others alone. Inputs and outputs are read from the ONNX file
itself, so the manifest cannot disagree with the graph it describes.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx

ENGINES_DIR = Path(__file__).resolve().parents[1] / "engines"
MANIFEST = ENGINES_DIR / "manifest.json"
from avatar_rt.engines import sha256

FORMAT = 1


def _tensor_spec(value: onnx.ValueInfoProto) -> dict:
    t = value.type.tensor_type
    shape = [d.dim_param if d.HasField("dim_param") else int(d.dim_value) for d in t.shape.dim]
    return {
        "name": value.name,
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
        "shape": shape,
        "doc": value.doc_string,
    }


def entry_for(model_path: Path, name: str, version: str, description: str, parity: dict | None = None) -> dict:
    """`parity`: export.parity.measure's record (max / mean abs error against the reference, and its bound)."""
    model = onnx.load(str(model_path))
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    entry = {
        "name": name,
        "version": version,
        "file": model_path.name,
        "sha256": sha256(model_path),
        "bytes": model_path.stat().st_size,
        "opset": opset,
        "metadata": {prop.key: prop.value for prop in model.metadata_props},
        "inputs": [_tensor_spec(v) for v in model.graph.input],
        "outputs": [_tensor_spec(v) for v in model.graph.output],
        "description": description,
    }
    if parity is not None:
        entry["parity"] = parity
    return entry


def batch_axes(entry: dict) -> dict[str, int]:
    """Per input and output of a manifest entry, the axis of its symbolic `batch` dimension (sessions in one
    call); absent where the graph has none (a literal 1: such a graph runs one stream a call)."""
    return {spec["name"]: spec["shape"].index("batch") for spec in entry.get("inputs", []) + entry.get("outputs", [])
            if "batch" in spec["shape"]}


def update(entry: dict, manifest: Path = MANIFEST) -> None:
    data = {"format": FORMAT, "engines": {}}
    if manifest.exists():
        data = json.loads(manifest.read_text())
        data.setdefault("engines", {})
    data["engines"][entry["name"]] = entry
    data["engines"] = dict(sorted(data["engines"].items()))
    manifest.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def file_entry(path: Path, name: str, version: str, description: str, metadata: dict[str, str]) -> dict:
    """An entry for a shipped file that is not an ONNX graph (numpy parameters read by avatar_rt)."""
    return {"name": name, "version": version, "file": path.name, "sha256": sha256(path),
            "bytes": path.stat().st_size, "metadata": metadata, "description": description}
