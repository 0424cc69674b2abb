"""The CPU-side TensorRT readiness check (export/trt_readiness.py): every shipped graph passes, and graphs with
what TensorRT cannot import natively fail it, each with a message naming the node and the reason."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the readiness check reads graphs with onnx (the `dev` extra)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export import trt_readiness  # noqa: E402
from export.manifest import ENGINES_DIR  # noqa: E402

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_every_shipped_graph_is_ready():
    reports = trt_readiness.check_dir(ENGINES_DIR)
    names = {r.path.split("/")[-1] for r in reports}
    assert {"lipsync_stage_a.onnx", "portrait_warp.onnx"} <= names
    for r in reports:
        print(f"{r.path}: opset {r.opset}, {sum(r.ops.values())} nodes, {len(r.ops)} op types")
        assert r.ready, f"{r.path}: {r.problems}"
    assert any(r.ops.get("GridSample") for r in reports)  # the warp's sampling is checked, not skipped
    assert any(r.ops.get("GRU") for r in reports)


def test_the_exporters_graphs_with_a_symbolic_batch_are_ready(tiny_run):
    reports = trt_readiness.check_dir(tiny_run / "engines")
    assert len(reports) == 3
    for r in reports:
        assert r.ready, f"{r.path}: {r.problems}"


def test_a_plain_supported_graph_is_ready():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["batch", 4])], [vi("y", ["batch", 4])])
    assert trt_readiness.check_model(m).ready


def _unsupported_graphs():
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    starts = numpy_helper.from_array(np.array([0], np.int64), "starts")
    ends = numpy_helper.from_array(np.array([2], np.int64), "ends")
    return {
        "an operator TensorRT lacks (Det)": (
            model([helper.make_node("Det", ["x"], ["y"])], [vi("x", [3, 3])], [vi("y", [])]),
            "not an operator TensorRT imports natively"),
        "a custom-domain node (a plugin)": (
            model([helper.make_node("MyWarp", ["x"], ["y"], domain="com.example")], [vi("x", [3])], [vi("y", [3])]),
            "custom domain"),
        "3-D grid sampling (5-D GridSample)": (
            model([helper.make_node("GridSample", ["x", "g"], ["y"], mode="linear")],
                  [vi("x", [1, 1, 4, 4, 4]), vi("g", [1, 2, 2, 2, 3])], [vi("y", [1, 1, 2, 2, 2])], opset=20),
            "4-D input only"),
        "a cubic Resize": (
            model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic")], [vi("x", [1, 1, 4, 4])],
                  [vi("y", [1, 1, 8, 8])], [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")]),
            "mode 'cubic'"),
        "an LSTM with layout 1": (
            model([helper.make_node("LSTM", ["x", "w", "r"], ["y"], hidden_size=2, layout=1)], [vi("x", [1, 3, 2])],
                  [vi("y", [1, 3, 1, 2])],
                  [numpy_helper.from_array(np.zeros((1, 8, 2), np.float32), "w"),
                   numpy_helper.from_array(np.zeros((1, 8, 2), np.float32), "r")]),
            "layout must be 0"),
        "a float64 tensor": (
            model([helper.make_node("Sigmoid", ["x"], ["y"])], [vi("x", [2], TensorProto.DOUBLE)],
                  [vi("y", [2], TensorProto.DOUBLE)]),
            "is DOUBLE"),
        "Slice axes that are not an initializer": (
            model([helper.make_node("Slice", ["x", "starts", "ends", "ax"], ["y"])],
                  [vi("x", [2, 4]), vi("ax", [1], TensorProto.INT64)], [vi("y", [2, None])], [starts, ends]),
            "must be an initializer"),
        "a dimension no profile covers": (
            model([helper.make_node("Unsqueeze", ["x", "axes"], ["y"])], [vi("x", ["tokens_in", 4])],
                  [vi("y", ["tokens_in", 1, 4])], [axes]),
            "no optimisation profile range"),
        "an opset TensorRT 10.0 does not read": (
            model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [4])], [vi("y", [4])], opset=21),
            "opset 21"),
        "a graph onnx.checker rejects": (
            model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"])], [vi("x", [4])],
                  [vi("y", [4])]),
            "onnx check"),
    }


@pytest.mark.parametrize("case", list(_unsupported_graphs()))
def test_what_tensorrt_cannot_import_fails_the_check(case):
    m, reason = _unsupported_graphs()[case]
    report = trt_readiness.check_model(m, case)
    print(f"{case}: {report.problems}")
    assert not report.ready
    assert any(reason in p for p in report.problems), report.problems


def test_the_command_exits_non_zero_on_an_unready_graph(tmp_path, capsys):
    m, _ = _unsupported_graphs()["an operator TensorRT lacks (Det)"]
    onnx.save(m, str(tmp_path / "det.onnx"))
    assert trt_readiness.main([str(tmp_path)]) == 1
    assert "NOT READY: det.onnx" in capsys.readouterr().out
    assert trt_readiness.main([str(ENGINES_DIR)]) == 0
