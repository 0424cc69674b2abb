"""`python -m export.all`: every network re-exported from its checkpoint or weights, parity printed and bounded,
the manifest describing what is on disk (on the tiny training run's models)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import onnx
import pytest

from avatar_rt import engines
from conftest import REPO


def literal_batch(path) -> None:
    """Make `path` look like a graph exported before issue 17: batch 1 written into every input and output."""
    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == "batch":
                dim.Clear()
                dim.dim_value = 1
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export_all") / "engines"
    shutil.copytree(tiny_run / "engines", out)
    literal_batch(out / "lipsync_stage_a.onnx")  # as the stage A being trained now will be exported
    old_sha = engines.sha256(out / "lipsync_stage_a.onnx")
    proc = subprocess.run([sys.executable, "-m", "export.all", "--out", str(out),
                           "--checkpoint", str(tiny_run / "work" / "stage_a.pt")],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out, proc.stdout, old_sha


def test_every_network_prints_its_parity_within_bounds(exported):
    _, stdout, _ = exported
    lines = {m.group(1): (float(m.group(2)), float(m.group(3)))
             for m in re.finditer(r"parity (.+?) vs .*?: max \|Δ\| (\S+), mean \|Δ\| (\S+) over", stdout)}
    for name, bound in (("lipsync_stage_a", 1e-4), ("lipsync_stage_b", 1e-4), ("lipsync_stage_b_teacher", 1e-4),
                        ("lipsync_stage_a (batch 1)", 1e-6), ("lipsync_stage_a (4 streams in one call)", 1e-5)):
        assert name in lines, f"no parity line for {name}"
        assert lines[name][0] <= bound
    assert lines["portrait_warp"][1] <= 0.01  # grey levels, mean
    assert "manifest: 5 entries, every sha256 matches" in stdout
    assert stdout.count("TensorRT readiness: ready") == 4


def test_the_manifest_describes_the_exported_graphs(exported):
    out, _, old_sha = exported
    entries = engines.load_manifest(out)["engines"]
    for name in ("lipsync_stage_a", "lipsync_stage_b", "lipsync_stage_b_teacher", "portrait_warp"):
        engines.engine_path(name, out)  # the file is there and its sha256 is the manifest's
        entry = entries[name]
        assert entry["opset"] == 17 and entry["parity"]["max_abs"] <= entry["parity"]["bound"]
        assert all(spec["dtype"] and spec["shape"] for spec in entry["inputs"] + entry["outputs"])
    a = entries["lipsync_stage_a"]
    assert a["sha256"] != old_sha  # re-exported: the batch is symbolic now …
    assert a["inputs"][0]["shape"] == ["batch", "frames", 80]
    assert {spec["name"]: spec["shape"] for spec in a["inputs"]}["state_gru"][:2] == [1, "batch"]
    assert json.loads(a["metadata"]["training"])["tiny"] is True  # … and keeps the old graph's metadata
    for name in ("lipsync_stage_b", "lipsync_stage_b_teacher"):  # stage B follows the re-exported stage A
        assert entries[name]["metadata"]["stage_a_sha256"] == a["sha256"]
        assert entries[name]["inputs"][0]["shape"] == ["batch", 5]


def test_check_only_fails_on_a_stale_file(exported, tmp_path):
    out, _, _ = exported
    copy = tmp_path / "engines"
    shutil.copytree(out, copy)
    (copy / "lipsync_stage_b.onnx").write_bytes((copy / "lipsync_stage_b.onnx").read_bytes() + b"\0")
    proc = subprocess.run([sys.executable, "-m", "export.all", "--out", str(copy), "--check-only"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "lipsync_stage_b: " in proc.stdout and "does not match its manifest sha256" in proc.stdout
