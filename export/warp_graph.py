"""The portrait warp as an ONNX graph: the twin of `CpuWarpBackend.composite` (avatar_rt/render/warp.py).

    python -m export.warp_graph [--out engines/portrait_warp.onnx] [--no-manifest] [--subpixel 32]

writes engines/portrait_warp.onnx (no weights: a few tens of kB) and its entry
in engines/manifest.json. Needs only the `onnx` package (no torch).

The graph holds no avatar: everything prepared once per avatar (the rest mesh,
the barycentric spreading weights, the head-weight column, the person layer
with its alpha, the background plate) is a graph input, laid out by
`avatar_rt.render.warp_onnx.avatar_inputs`; per frame only `warp_points` and
`head_affine` change. Opset 17, standard operators only, every resampling a
GridSample, every rank static (sizes are symbolic and come from input shapes,
never from input values), so TensorRT's ONNX parser can build an engine with
one optimization profile per avatar size.

What it computes, step by step (the CPU code's names in brackets):

1. the inverse head affine A⁻¹ in closed form [np.linalg.inv];
2. the rigid backward map, row by row affine in x:
   map = (1 + w·(A⁻¹₀₀ − 1))·x + w·(A⁻¹₀₁·y + A⁻¹₀₂), likewise for y [backward_map];
3. the landmarks' motion in the rest frame, delta = A⁻¹·warp_points − rest,
   zero past `num_moving`; the local field is skipped (multiplied by 0) when
   max |delta| < 1e-3, as on the CPU;
4. the half-resolution field: Σₖ weightsₖ · delta[vertex_idsₖ] (Gather +
   ReduceSum) [LocalField.field's sparse product];
5. up to the ROI's full size [cv2.resize INTER_LINEAR]: GridSample,
   align_corners=0, on the per-avatar grid `field_grid`, which holds OpenCV's
   pixel-centre rule src = (dst + ½)·(n_half/n) − ½ already clamped to
   [0, n_half − 1] (the edge rule of cv2.resize), so no sample reaches past
   the edge pixels and the padding mode ('zeros') plays no part;
6. the fixed-point inversion, src = q − D(q − D(q)) for one step, with q the
   rigid map in ROI coordinates; `--inverse-steps` (= DenseWarp.inverse_steps,
   1 by default; the model's metadata records it and the runtime refuses a
   mismatch) unrolls more [cv2.remap, BORDER_CONSTANT 0]: GridSample, align_corners=0,
   padding 'zeros' (an out-of-range neighbour counts as 0, as OpenCV's constant
   border does), applied only inside the ROI's box moved by A and grown by 2 px,
   as on the CPU;
7. the person layer and its 8-bit alpha, as one BGRA image [cv2.remap,
   BORDER_CONSTANT 0]: GridSample, align_corners=0, padding 'zeros', rounded
   half up to integers as the 8-bit remap's fixed point does ((Σ + 2¹⁴) >> 15);
8. the blend [cv2.blendLinear]: (p·a + b·(1 − a)) / (a + (1 − a) + 1e-5) with
   a = alpha8/255, rounded half to even, clipped, uint8, as rows × width × BGR.

cv2.remap rounds every sampling position to 1/32 px (INTER_TAB_SIZE) before
interpolating; the graph does the same (Round(p·32)/32, in pixels, before each
GridSample; `--subpixel 0` turns it off). With 1/32 px positions the bilinear
weights are exact multiples of 1/1024, so OpenCV's 15-bit fixed-point weights
are exact too, and with half-up rounding the graph reproduces the 8-bit remap.
On the bundled portrait, over 40 random poses across the full parameter
ranges: mean difference to the CPU frame 0.0001 grey levels (0.036 without the
1/32 px rounding), 99.9th percentile 0, ~0.01 % of values differ at all. What
remains is float32 here vs float64 on the CPU (A⁻¹, the ROI box corners) and
summation order, which the fixed-point inversion amplifies at a few pixels where
the field folds (between the lips of an open jaw; worst pixel ~9 levels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from avatar_rt.render.warp import DenseWarp
from export import manifest

OPSET = 17
NAME = "portrait_warp"
VERSION = "1.0.0"
NUM_POINTS = 478  # MediaPipe Face Mesh with irises (avatar_rt.avatar.landmarks.NUM_LANDMARKS)
STILL_THRESHOLD = 1e-3  # px; below this the local field is skipped (DenseWarp.backward_map)
BOX_MARGIN = 2.0  # px around the moved ROI box (DenseWarp.backward_map)
BLEND_EPS = 1e-5  # cv2.blendLinear's denominator guard
REMAP_SUBPIXEL = 32  # cv2.remap rounds sampling positions to 1/INTER_TAB_SIZE = 1/32 px
INVERSE_STEPS = DenseWarp.inverse_steps  # DenseWarp.inverse_steps: the runtime refuses an engine built for another count
DEFAULT_OUT = manifest.ENGINES_DIR / f"{NAME}.onnx"

F32, I64, U8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.UINT8

# name, dtype, shape, meaning. Symbolic dims: height/width of the portrait,
# rows that move, the half-resolution field (half_h, half_w) and the ROI (roi_h, roi_w).
INPUTS = [
    ("warp_points", F32, [NUM_POINTS, 2], "per frame: the rig's landmarks without blinks, output pixels (x, y)"),
    ("head_affine", F32, [2, 3], "per frame: the head's rigid motion A as a 2D affine, rest → output pixels"),
    ("rest_points", F32, [NUM_POINTS, 2], "avatar: rest landmarks, pixels (DenseWarp.rest)"),
    ("source", F32, [1, 4, "height", "width"],
     "avatar: person layer B, G, R and alpha·255 rounded (the CPU backend's BGRA), 0..255, NCHW"),
    ("background", F32, [1, 3, "rows", "width"], "avatar: background plate, top `rows` rows, B, G, R 0..255, NCHW"),
    ("grid_x", F32, [1, "width"], "avatar: output pixel x, 0..width-1 (DenseWarp.xs)"),
    ("grid_y", F32, ["rows", 1], "avatar: output pixel y, 0..rows-1 (DenseWarp.ys)"),
    ("head_w", F32, ["rows", 1],
     "avatar: per-row weight of the head's motion, 1 → 0 down the neck (DenseWarp.head_w)"),
    ("field_weights", F32, [3, "half_h", "half_w"],
     "avatar: barycentric weights of the half-res field, corner first (LocalField.weights moved to (3, hh, hw))"),
    ("field_vertex_ids", I64, [3, "half_h", "half_w"], "avatar: their vertex ids, likewise (LocalField.vertex_ids)"),
    ("num_moving", I64, [1],
     "avatar: vertices below this id move with their landmark, the rest stay (LocalField.num_moving)"),
    ("roi", F32, [4], "avatar: the field's region x0, y0, x1, y1 in pixels, x1/y1 exclusive (LocalField.roi)"),
    ("field_grid", F32, [1, "roi_h", "roi_w", 2],
     "avatar: GridSample grid upsampling the half-res field to the ROI the way cv2.resize does "
     "(OpenCV's pixel-centre rule, clamped to the edge pixels)"),
]
OUTPUTS = [
    ("frame", U8, ["rows", "width", 3], "the top `rows` rows of the frame, BGR uint8 (CpuWarpBackend.composite)"),
]


class _Graph:
    """A few helpers over onnx.helper: every call adds one node and returns its output name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, dtype=np.float32, hint: str = "c") -> str:
        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, n_out: int = 1, **attrs):
        outs = [self._name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=outs[0], **attrs))
        return outs[0] if n_out == 1 else outs

    # shorthands
    def add(self, a, b, **kw): return self.op("Add", a, b, **kw)
    def sub(self, a, b, **kw): return self.op("Sub", a, b, **kw)
    def mul(self, a, b, **kw): return self.op("Mul", a, b, **kw)
    def div(self, a, b, **kw): return self.op("Div", a, b, **kw)

    def scalar(self, flat: str, index: int, hint: str) -> str:
        """Element `index` of a 1-D tensor, as shape (1,)."""
        return self.op("Gather", flat, self.const([index], np.int64), axis=0, hint=hint)

    def dim(self, tensor: str, axis: int, hint: str) -> str:
        """Size of `axis` of a tensor's shape, float32, shape (1,)."""
        shape = self.op("Shape", tensor)
        return self.op("Cast", self.scalar(shape, axis, hint + "_i"), to=F32, hint=hint)

    def interleave(self, x: str, y: str, hint: str) -> str:
        """Two (rows, width) planes → a GridSample grid (1, rows, width, 2)."""
        axes = self.const([0, 3], np.int64)
        return self.op("Concat", self.op("Unsqueeze", x, axes), self.op("Unsqueeze", y, axes), axis=3, hint=hint)

    def planes(self, nchw: str, hint: str) -> tuple[str, str]:
        """A two-channel (1, 2, rows, width) GridSample output → its x and y planes (rows, width)."""
        x, y = self.op("Split", nchw, self.const([1, 1], np.int64), axis=1, n_out=2, hint=hint + "_xy")
        axes = self.const([0, 1], np.int64)
        return self.op("Squeeze", x, axes, hint=hint + "_x"), self.op("Squeeze", y, axes, hint=hint + "_y")

    def coord(self, pixels: str, scale: str, offset: str, subpixel: int) -> str:
        """Pixel coordinates → GridSample's normalized ones (pixels·scale + offset), first rounded to
        1/subpixel px as cv2.remap does (0: not rounded)."""
        if subpixel:
            steps = self.op("Round", self.mul(pixels, self.const([float(subpixel)])))
            return self.add(self.mul(steps, self.div(scale, self.const([float(subpixel)]))), offset)
        return self.add(self.mul(pixels, scale), offset)

    def grid_sample(self, image: str, grid: str, padding: str, hint: str) -> str:
        return self.op("GridSample", image, grid, mode="bilinear", padding_mode=padding, align_corners=0, hint=hint)


def build_model(subpixel: int = REMAP_SUBPIXEL, inverse_steps: int = INVERSE_STEPS) -> onnx.ModelProto:
    """The graph. `subpixel` rounds every sampling position to 1/subpixel px before GridSample
    (cv2.remap's fixed-point positions; 0 samples at the exact positions); `inverse_steps` is the
    number of fixed-point steps inverting the local field (DenseWarp.inverse_steps), unrolled."""
    if subpixel < 0 or inverse_steps < 0:
        raise ValueError("subpixel and inverse_steps are counts (>= 0)")
    g = _Graph()
    one = g.const([1.0])

    # 1. A⁻¹ in closed form, from A = [[a, b, c], [d, e, f]].
    aff = g.op("Reshape", "head_affine", g.const([6], np.int64))
    a, b, c, d, e, f = (g.scalar(aff, i, n) for i, n in enumerate("abcdef"))
    det = g.sub(g.mul(a, e), g.mul(b, d), hint="det")
    i00 = g.div(e, det, hint="i00")
    i01 = g.op("Neg", g.div(b, det), hint="i01")
    i10 = g.op("Neg", g.div(d, det), hint="i10")
    i11 = g.div(a, det, hint="i11")
    i02 = g.op("Neg", g.add(g.mul(i00, c), g.mul(i01, f)), hint="i02")
    i12 = g.op("Neg", g.add(g.mul(i10, c), g.mul(i11, f)), hint="i12")

    # 2. Rigid backward map, as x and y planes (rows, width): per row, map = slope·x + offset.
    w, xs, ys = "head_w", "grid_x", "grid_y"
    slope_x = g.add(one, g.mul(w, g.sub(i00, one)), hint="slope_x")
    offset_x = g.mul(w, g.add(g.mul(i01, ys), i02), hint="offset_x")
    slope_y = g.mul(w, i10, hint="slope_y")
    offset_y = g.add(ys, g.mul(w, g.add(g.mul(g.sub(i11, one), ys), i12)), hint="offset_y")
    map_x = g.add(g.mul(slope_x, xs), offset_x, hint="rigid_x")
    map_y = g.add(g.mul(slope_y, xs), offset_y, hint="rigid_y")

    # 3. Landmark motion in the rest frame; only the first num_moving points move.
    inv_t = g.op("Reshape", g.op("Concat", i00, i10, i01, i11, axis=0), g.const([2, 2], np.int64), hint="inv_t")
    back = g.add(g.op("MatMul", "warp_points", inv_t), g.op("Concat", i02, i12, axis=0), hint="back")
    delta = g.sub(back, "rest_points", hint="delta")
    point_ids = g.const(np.arange(NUM_POINTS, dtype=np.int64)[:, None], np.int64, hint="point_ids")
    moving = g.op("Less", point_ids, "num_moving", hint="moving")
    delta = g.op("Where", moving, delta, g.const([0.0]), hint="delta_moving")
    peak = g.op("ReduceMax", g.op("Abs", delta), keepdims=0, hint="peak")
    local_on = g.op("Cast", g.op("GreaterOrEqual", peak, g.const(STILL_THRESHOLD)), to=F32, hint="local_on")

    # 4. Half-resolution field, channel-first: vertices past the landmarks (ring and box anchors)
    # read a zero row.
    padded = g.op("Concat", delta, g.const(np.zeros((1, 2))), axis=0, hint="delta_padded")  # (points + 1, 2)
    ids = g.op("Min", "field_vertex_ids", g.const(NUM_POINTS, np.int64), hint="ids")
    gathered = g.op("Gather", g.op("Transpose", padded, perm=[1, 0]), ids, axis=1, hint="gathered")  # (2, 3, hh, hw)
    half = g.op("ReduceSum", g.mul(gathered, "field_weights"), g.const([1], np.int64), keepdims=1, hint="half_sum")
    half = g.op("Reshape", half, g.const([1, 2, 0, 0], np.int64), hint="half_field")  # (1, 2, half_h, half_w)

    # 5. Up to the ROI's size, OpenCV's pixel-centre bilinear resize (edge-clamped).
    field = g.grid_sample(half, "field_grid", "zeros", "field")  # (1, 2, roi_h, roi_w)

    # 6. src = q − D(q − D(q)) inside the moved ROI box. Coordinates stay as x and y planes and
    # are interleaved into a grid only for each GridSample (ONNX Runtime's CPU kernels broadcast
    # planes fast and (…, 2)-shaped tensors slowly).
    roi_w, roi_h = g.dim("field_grid", 2, "roi_w"), g.dim("field_grid", 1, "roi_h")
    x0, y0 = g.scalar("roi", 0, "x0"), g.scalar("roi", 1, "y0")
    two = g.const([2.0])
    # ROI pixel p → normalized field coordinate (2p + 1)/n − 1 = p·(2/n) + (1/n − 1)
    fsx, fsy = g.div(two, roi_w, hint="fsx"), g.div(two, roi_h, hint="fsy")
    fox, foy = g.sub(g.div(one, roi_w), one, hint="fox"), g.sub(g.div(one, roi_h), one, hint="foy")
    qx, qy = g.sub(map_x, x0, hint="qx"), g.sub(map_y, y0, hint="qy")

    def lookup(px: str, py: str, hint: str) -> tuple[str, str]:
        grid = g.interleave(g.coord(px, fsx, fox, subpixel), g.coord(py, fsy, foy, subpixel), hint + "_grid")
        return g.planes(g.grid_sample(field, grid, "zeros", hint), hint)

    dx, dy = lookup(qx, qy, "d0")
    for step in range(inverse_steps):  # unrolled: DenseWarp.inverse_steps
        dx, dy = lookup(g.sub(qx, dx), g.sub(qy, dy), f"d{step + 1}")

    # The box: the ROI's corners moved by A, floored/ceiled and grown by 2 px.
    cx = g.op("Gather", "roi", g.const([0, 2, 0, 2], np.int64), axis=0, hint="corner_x")
    cy = g.op("Gather", "roi", g.const([1, 1, 3, 3], np.int64), axis=0, hint="corner_y")
    mx = g.add(g.add(g.mul(a, cx), g.mul(b, cy)), c, hint="moved_x")
    my = g.add(g.add(g.mul(d, cx), g.mul(e, cy)), f, hint="moved_y")
    margin = g.const([BOX_MARGIN])
    bx0 = g.sub(g.op("Floor", g.op("ReduceMin", mx, keepdims=1)), margin, hint="bx0")
    bx1 = g.add(g.op("Ceil", g.op("ReduceMax", mx, keepdims=1)), margin, hint="bx1")
    by0 = g.sub(g.op("Floor", g.op("ReduceMin", my, keepdims=1)), margin, hint="by0")
    by1 = g.add(g.op("Ceil", g.op("ReduceMax", my, keepdims=1)), margin, hint="by1")
    in_x = g.op("And", g.op("GreaterOrEqual", xs, bx0), g.op("Less", xs, bx1), hint="in_x")  # (1, width)
    in_y = g.op("And", g.op("GreaterOrEqual", ys, by0), g.op("Less", ys, by1), hint="in_y")  # (rows, 1)
    in_box = g.op("Cast", g.op("And", in_y, in_x), to=F32, hint="in_box")  # (rows, width)
    gate = g.mul(in_box, local_on, hint="gate")
    src_x = g.sub(map_x, g.mul(dx, gate), hint="src_x")  # reference pixels
    src_y = g.sub(map_y, g.mul(dy, gate), hint="src_y")

    # 7. Person and alpha (BGRA) resampled, zero outside, rounded as the 8-bit remap rounds.
    src_w, src_h = g.dim("source", 3, "src_w"), g.dim("source", 2, "src_h")
    ssx, ssy = g.div(two, src_w, hint="ssx"), g.div(two, src_h, hint="ssy")
    sox, soy = g.sub(g.div(one, src_w), one, hint="sox"), g.sub(g.div(one, src_h), one, hint="soy")
    grid = g.interleave(g.coord(src_x, ssx, sox, subpixel), g.coord(src_y, ssy, soy, subpixel), "src_grid")
    # (1, 4, rows, width), rounded half up: the 8-bit remap's (Σ wᵢ·vᵢ + 2¹⁴) >> 15.
    moved = g.op("Floor", g.add(g.grid_sample("source", grid, "zeros", "moved_f"), g.const([0.5])), hint="moved")
    person, alpha8 = g.op("Split", moved, g.const([3, 1], np.int64), axis=1, n_out=2, hint="bgr_a")

    # 8. cv2.blendLinear(person, background, a, 1 − a).
    alpha = g.mul(alpha8, g.const(np.float32(1.0 / 255.0)), hint="alpha")
    beta = g.sub(g.const(1.0), alpha, hint="beta")
    num = g.add(g.mul(person, alpha), g.mul("background", beta), hint="num")
    den = g.add(g.add(alpha, beta), g.const(BLEND_EPS), hint="den")
    # Laid out as rows × width × BGR while still float (TensorRT shuffles uint8 reluctantly), then
    # rounded half to even and saturated as OpenCV's saturate_cast<uchar> does.
    out = g.op("Squeeze", g.op("Transpose", g.div(num, den), perm=[0, 2, 3, 1]), g.const([0], np.int64), hint="hwc")
    out = g.op("Clip", g.op("Round", out), g.const(0.0), g.const(255.0), hint="clipped")
    g.nodes.append(helper.make_node("Cast", [out], ["frame"], name="frame", to=U8))

    inputs = [helper.make_tensor_value_info(n, t, s, doc_string=doc) for n, t, s, doc in INPUTS]
    outputs = [helper.make_tensor_value_info(n, t, s, doc_string=doc) for n, t, s, doc in OUTPUTS]
    graph = helper.make_graph(g.nodes, NAME, inputs, outputs, initializer=g.inits,
                              doc_string="Portrait warp + composite (avatar_rt CpuWarpBackend twin).")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="avatar_rt.export",
                              producer_version=VERSION, doc_string=__doc__)
    model.ir_version = 8  # opset 17's IR; readable by every ONNX Runtime ≥ 1.13 and TensorRT ≥ 8.6
    # What the runtime checks before using the graph with a given DenseWarp.
    helper.set_model_props(model, {"inverse_steps": str(inverse_steps), "subpixel": str(subpixel),
                                   "num_points": str(NUM_POINTS)})
    onnx.checker.check_model(model, full_check=True)
    return model


DESCRIPTION = (
    "Dense warp of the portrait's person layer (rigid head motion faded down the neck, plus the landmark-driven "
    "local field inverted with fixed-point steps) and its composite over the still background: the ONNX twin "
    "of avatar_rt.render.warp.CpuWarpBackend.composite. Avatar-independent; per-avatar tensors are inputs "
    "(avatar_rt.render.warp_onnx.avatar_inputs), per frame only warp_points and head_affine change. "
    "Every resampling is GridSample (bilinear, align_corners=0, padding 'zeros'): the field's upsampling grid "
    "is pre-clamped to the edge pixels as cv2.resize does; field lookups and the BGRA image read 0 outside, as "
    "cv2.remap's BORDER_CONSTANT 0 does."
)


def export(out: Path = DEFAULT_OUT, write_manifest: bool = True, subpixel: int = REMAP_SUBPIXEL,
           inverse_steps: int = INVERSE_STEPS, parity: dict | None = None) -> Path:
    """Write the graph to `out` and (with `write_manifest`) its entry into the manifest beside it; `parity`:
    the record of export.parity to keep in the entry."""
    out.parent.mkdir(parents=True, exist_ok=True)
    model = build_model(subpixel, inverse_steps)
    out.write_bytes(model.SerializeToString(deterministic=True))
    if write_manifest:
        entry = manifest.entry_for(out, NAME, VERSION, DESCRIPTION, parity)
        manifest.update(entry, out.parent / manifest.MANIFEST.name)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-manifest", action="store_true", help="do not touch engines/manifest.json")
    parser.add_argument("--subpixel", type=int, default=REMAP_SUBPIXEL,
                        help="round sampling positions to 1/N px as cv2.remap does (0: exact positions)")
    parser.add_argument("--inverse-steps", type=int, default=INVERSE_STEPS,
                        help="fixed-point steps inverting the local field; must equal DenseWarp.inverse_steps")
    args = parser.parse_args(argv)
    path = export(args.out, write_manifest=not args.no_manifest, subpixel=args.subpixel,
                  inverse_steps=args.inverse_steps)
    entry = manifest.entry_for(path, NAME, VERSION, DESCRIPTION)
    print(f"wrote {path} ({entry['bytes']} bytes, opset {entry['opset']}, sha256 {entry['sha256']})")
    if not args.no_manifest:
        print(f"updated {args.out.parent / manifest.MANIFEST.name}")


if __name__ == "__main__":
    main()
