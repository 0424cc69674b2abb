"""Can TensorRT build these graphs natively? A CPU-side check of every shipped ONNX graph (no GPU, no tensorrt).

    python -m export.trt_readiness [ENGINES_DIR]     # every *.onnx in engines/ (default), one line each

For each graph: it passes `onnx.checker` (full check) and strict shape inference;
its opset is one the ONNX parser of TensorRT 10 reads (9 … 20); every node is an
operator TensorRT's ONNX parser imports natively (no plugin), on data types it lists
for that operator, with the attribute and input restrictions it states (GridSample
on 4-D input only, Resize's modes, GRU/LSTM/RNN activations and layout, `axes`
inputs that must be initializers, …); and every input dimension is a literal or a
name the TensorRT optimisation profiles give a range (the builder needs one).

The operator table is the support matrix of onnx-tensorrt's docs/operators.md for
TensorRT 10.0 (github.com/onnx/onnx-tensorrt, commit 96e781103cfc, 2024-06-17):
operators marked Y with their listed types; the restrictions column is encoded in
`_RESTRICTIONS`. An operator or type not listed there fails the check, so a new op in
an exporter shows up here before anyone has a GPU to try it on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import onnx
from onnx import TensorProto, helper, shape_inference

SOURCE = "onnx-tensorrt docs/operators.md, TensorRT 10.0 (commit 96e781103cfc, 2024-06-17)"
OPSET_RANGE = (9, 20)

# Operator → the data types TensorRT 10.0 lists for it (FP32 FP16 BF16 INT32 INT64 UINT8 INT8 FP8 INT4 BOOL).
SUPPORTED: dict[str, str] = {
    **dict.fromkeys(("Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization", "Ceil",
                     "Celu",
                     "Clip", "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "Dropout", "Einsum", "Elu", "Erf", "Exp",
                     "Floor", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "GroupNormalization", "GRU",
                     "HardSigmoid", "HardSwish", "Hardmax", "ImageScaler", "InstanceNormalization", "IsInf",
                     "LayerNormalization", "LeakyRelu", "Log", "LogSoftmax", "LRN", "LSTM", "LpNormalization", "LpPool",
                     "MatMul", "MaxPool", "MeanVarianceNormalization", "ParametricSoftplus", "Pow", "PRelu",
                     "QuantizeLinear", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                     "Reciprocal", "Resize", "RNN", "Round", "ScaledTanh", "Scan", "Selu", "Sigmoid", "Sin", "Sinh",
                     "Softmax", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu", "Upsample"),
                    "FP32 FP16 BF16"),
    **dict.fromkeys(("Abs", "Add", "ArgMax", "ArgMin", "DepthToSpace", "Div", "Equal", "Greater", "GreaterOrEqual",
                     "IsNaN",
                     "Less", "LessOrEqual", "Max", "Min", "Mod", "Mul", "Neg", "Pad", "Range", "ReduceL1", "ReduceL2",
                     "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
                     "ReduceSum",
                     "ReduceSumSquare", "Relu", "Scatter", "ScatterElements", "ScatterND", "Shrink", "Sign",
                     "SpaceToDepth",
                     "Sub", "Sum", "TopK"),
                    "FP32 FP16 BF16 INT32 INT64"),
    **dict.fromkeys(("Concat", "Constant", "ConstantOfShape", "Expand", "EyeLike", "Flatten", "Gather",
                     "GatherElements",
                     "GatherND", "Identity", "If", "Loop", "OneHot", "Reshape", "ReverseSequence", "Shape", "Size",
                     "Slice",
                     "Split", "Squeeze", "Tile", "Transpose", "Trilu", "Unsqueeze", "Where"),
                    "FP32 FP16 BF16 INT32 INT64 BOOL"),
    **dict.fromkeys(("DeformConv", "GridSample", "Mish", "NonMaxSuppression", "NonZero", "RoiAlign"),
                    "FP32 FP16"),
    **dict.fromkeys(("And", "Not", "Or", "Xor"),
                    "BOOL"),
    **dict.fromkeys(("Cast", "CastLike"),
                    "FP32 FP16 BF16 INT32 INT64 UINT8 BOOL"),
    "DequantizeLinear": "INT8 FP8 INT4",
    "Gelu": "FP32 FP16 BF16 INT8 INT32 INT64",
    "Mean": "FP32 FP16 BF16 FP8 INT32 INT64",
}
_ONNX_TYPES = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
               TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.UINT8: "UINT8",
               TensorProto.INT8: "INT8", TensorProto.BOOL: "BOOL", TensorProto.DOUBLE: "DOUBLE",
               TensorProto.FLOAT8E4M3FN: "FP8"}
# Inputs that are shapes, indices or axes rather than data: their (integer) type is not the op's data type.
_INDEX_INPUTS = {"Gather": {1}, "GatherElements": {1}, "GatherND": {1}, "Reshape": {1}, "Expand": {1}, "Tile": {1},
                 "Slice": {1, 2, 3, 4}, "Squeeze": {1}, "Unsqueeze": {1}, "Pad": {1, 2, 3}, "Resize": {1, 2, 3},
                 "TopK": {1}, "ConstantOfShape": {0}, "Split": {1}, "CumSum": {1}, "OneHot": {0, 1},
                 "ScatterElements": {1}, "ScatterND": {1}, "Range": set(), "Where": {0}, "Shape": {0}, "Size": {0},
                 "ReduceSum": {1}, "ReduceMean": {1}, "ReduceMax": {1}, "ReduceMin": {1}, "ReduceProd": {1},
                 "ReduceL1": {1}, "ReduceL2": {1}, "ReduceLogSum": {1}, "ReduceLogSumExp": {1},
                 "ReduceSumSquare": {1}, "GRU": {4}, "LSTM": {4}, "RNN": {4}, "Cast": {0}}
# Comparisons: the listed types are their inputs'; the result is BOOL by definition.
_BOOL_RESULT = {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "IsNaN", "IsInf"}
_QUANTIZE = {"QuantizeLinear", "DequantizeLinear"}
# Inputs TensorRT needs as build-time constants (initializers or Constant nodes): "`axes` must be an initializer".
_CONSTANT_INPUTS = {"Slice": {3}, "Squeeze": {1}, "Unsqueeze": {1}, "Pad": {3}, "CumSum": {1},
                    **{op: {1} for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                          "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")}}


@dataclass
class Finding:
    node: str
    op: str
    problem: str

    def __str__(self) -> str:
        return f"{self.op} {self.node!r}: {self.problem}"


@dataclass
class Report:
    path: str
    opset: int
    ops: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.problems


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _recurrent(node, attrs, rank) -> list[str]:
    """GRU / LSTM / RNN: a bidirectional layer needs the same activations both ways; LSTM: input_forget 0, layout 0."""
    out = []
    acts = [_text(a) for a in attrs.get("activations", [])]
    half = len(acts) // 2
    if _text(attrs.get("direction", "forward")) == "bidirectional" and acts[:half] != acts[half:]:
        out.append(f"bidirectional with different activations per direction {acts}")
    if node.op_type == "LSTM":
        if attrs.get("input_forget", 0) != 0:
            out.append("input_forget must be 0")
        if attrs.get("layout", 0) != 0:
            out.append("layout must be 0")
    return out


def _grid_sample(node, attrs, rank) -> list[str]:
    r = rank(node.input[0])
    return [] if r == 4 else [f"input of rank {r}: TensorRT samples 4-D input only (2-D grids)"]


def _resize(node, attrs, rank) -> list[str]:
    out = []
    ctm = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
    if ctm not in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"):
        out.append(f"coordinate_transformation_mode {ctm!r}")
    mode = _text(attrs.get("mode", "nearest"))
    if mode not in ("nearest", "linear"):
        out.append(f"mode {mode!r} (nearest or linear only)")
    nearest = _text(attrs.get("nearest_mode", "round_prefer_floor"))
    if mode == "nearest" and nearest not in ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil"):
        out.append(f"nearest_mode {nearest!r}")
    if attrs.get("antialias", 0):
        out.append("antialias")
    if _text(attrs.get("keep_aspect_ratio_policy", "stretch")) != "stretch":
        out.append("keep_aspect_ratio_policy other than stretch")
    return out


def _pooling(node, attrs, rank) -> list[str]:
    out = [] if len(attrs.get("kernel_shape", [])) in (2, 3) else ["2-D or 3-D pooling only"]
    if any(d != 1 for d in attrs.get("dilations", [])):
        out.append("dilations must be all ones")
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        out.append("the Indices output is unsupported")
    return out


def _first_output_only(node, attrs, rank) -> list[str]:
    return [] if all(not o for o in node.output[1:]) else ["only the first output is supported"]


def _constant(node, attrs, rank) -> list[str]:
    bad = {"sparse_value", "value_string", "value_strings"} & set(attrs)
    return [f"attribute {sorted(bad)[0]}"] if bad else []


def _topk(node, attrs, rank) -> list[str]:
    return [] if attrs.get("sorted", 1) == 1 else ["sorted must be 1"]


def _scatter_nd(node, attrs, rank) -> list[str]:
    return [] if _text(attrs.get("reduction", "none")) == "none" else ["reduction is not supported"]


_RESTRICTIONS: dict[str, Callable] = {
    "GRU": _recurrent, "LSTM": _recurrent, "RNN": _recurrent, "GridSample": _grid_sample, "Resize": _resize,
    "AveragePool": _pooling, "MaxPool": _pooling, "LayerNormalization": _first_output_only, "Constant": _constant,
    "TopK": _topk, "ScatterND": _scatter_nd,
}


def _known_dim() -> Callable[[str], bool]:
    """Symbolic dimensions the TensorRT builder has a profile range for: avatar_rt.engines.profiles when the
    runtime has it, else the names the shipped graphs use (batch = sessions, stage A's frames, the warp's sizes)."""
    try:
        from avatar_rt.engines.profiles import BATCH_DIMS, DIM_RANGES  # noqa: PLC0415

        return lambda name: name in BATCH_DIMS or name in DIM_RANGES
    except ImportError:
        # ("n": stage B's batch before issue 17)
        names = {"batch", "n", "frames", "height", "width", "rows", "roi_h", "roi_w", "half_h", "half_w"}
        return names.__contains__


def check_model(model: onnx.ModelProto, name: str = "model", known_dim: Callable[[str], bool] | None = None
                ) -> Report:
    """Every problem TensorRT 10 would have importing `model` natively (empty `problems`: ready)."""
    known_dim = known_dim or _known_dim()
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    report = Report(name, opset)
    problems = report.problems
    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        problems.append(f"opset {opset} outside {OPSET_RANGE[0]}…{OPSET_RANGE[1]}")
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises checker and inference errors of several types
        problems.append(f"onnx check / shape inference: {str(exc).splitlines()[0]}")
        inferred = model
    graph = inferred.graph
    types: dict[str, int] = {}
    ranks: dict[str, int] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = vi.type.tensor_type
        types[vi.name] = t.elem_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    constants = {i.name for i in graph.initializer}
    for init in graph.initializer:
        types[init.name] = init.data_type
        ranks[init.name] = len(init.dims)
    for vi in graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and not known_dim(d.dim_param):
                problems.append(f"input {vi.name!r}: dimension {d.dim_param!r} has no optimisation profile range")
            elif not d.HasField("dim_param") and d.dim_value <= 0:
                problems.append(f"input {vi.name!r}: a dimension with neither a size nor a name")
    rank = lambda tensor: ranks.get(tensor, -1)  # noqa: E731
    for node in graph.node:
        report.ops[node.op_type] = report.ops.get(node.op_type, 0) + 1
        findings = _check_node(node, types, rank, constants)
        if node.op_type == "Constant":
            constants.update(node.output)
        problems.extend(str(Finding(node.name or node.output[0], node.op_type, f)) for f in findings)
    return report


def _check_node(node: onnx.NodeProto, types: dict[str, int], rank, constants: set[str]) -> list[str]:
    if node.domain not in ("", "ai.onnx"):
        return [f"custom domain {node.domain!r} (a plugin)"]
    if node.op_type not in SUPPORTED:
        return ["not an operator TensorRT imports natively"]
    allowed = set(SUPPORTED[node.op_type].split())
    out = []
    skip = _INDEX_INPUTS.get(node.op_type, set())
    tensors = [(f"input {i}", t) for i, t in enumerate(node.input) if t and i not in skip]
    if node.op_type in _QUANTIZE:  # the listed types are those of x; scales and results are float
        tensors = tensors[:1]
    elif node.op_type not in _BOOL_RESULT:
        tensors += [(f"output {i}", t) for i, t in enumerate(node.output) if t]
    for where, tensor in tensors:
        kind = _ONNX_TYPES.get(types.get(tensor, 0), "unknown")
        if kind not in allowed:
            out.append(f"{where} {tensor!r} is {kind}; TensorRT lists {' '.join(sorted(allowed))}")
    for i in sorted(_CONSTANT_INPUTS.get(node.op_type, set())):
        if i < len(node.input) and node.input[i] and node.input[i] not in constants:
            out.append(f"input {i} ({node.input[i]!r}) must be an initializer")
    check = _RESTRICTIONS.get(node.op_type)
    if check is not None:
        out.extend(check(node, _attrs(node), rank))
    return out


def check_file(path: Path, known_dim: Callable[[str], bool] | None = None) -> Report:
    return check_model(onnx.load(str(path)), str(path), known_dim)


def check_dir(engines_dir: Path) -> list[Report]:
    return [check_file(p) for p in sorted(Path(engines_dir).glob("*.onnx"))]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "engines"
    reports = check_dir(root)
    print(f"TensorRT readiness ({SOURCE}):")
    for r in reports:
        ops = ", ".join(f"{k}×{v}" for k, v in sorted(r.ops.items()))
        print(f"  {'ready' if r.ready else 'NOT READY'}: {Path(r.path).name} (opset {r.opset}; {ops})")
        for p in r.problems:
            print(f"    - {p}")
    if not reports:
        print(f"  no ONNX graphs in {root}")
    return 0 if reports and all(r.ready for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
