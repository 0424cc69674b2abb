"""`avatar-rt engines build`: TensorRT plans from the shipped ONNX files, checked against ONNX Runtime on the CPU.

Per model: parse the ONNX file (no plugins), one optimisation profile over its symbolic dimensions
(avatar_rt/engines/profiles.py: batch 1…--max-batch), the shared timing cache of this GPU + TensorRT, then the
cheapest precision whose engine holds parity (avatar_rt/engines/parity.py) on the recorded inputs
(avatar_rt/engines/record.py), at batch 1 and at --max-batch:
  1. fp16 — every layer may run in FP16;
  2. fp16-mixed — FP16, but the layers that lose most in it (reductions, softmax, normalisation, exp/log/pow
     and other unary math) are pinned to FP32 with OBEY_PRECISION_CONSTRAINTS;
  3. fp32 — the whole model in FP32 (it always holds parity short of a TensorRT bug, which is then reported).
The plan and a JSON note (precision, profile, parity) go to the engine cache (avatar_rt/engines/cache.py).
Builder calls follow the TensorRT 10 Python API: Builder.create_network(0) (explicit batch is the only mode),
OnnxParser.parse_from_file, IBuilderConfig.set_flag / set_memory_pool_limit / add_optimization_profile /
create_timing_cache + set_timing_cache, Builder.build_serialized_network; see
https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/BuilderConfig.html and
https://docs.nvidia.com/deeplearning/tensorrt/latest/performance/builder-performance.html (timing cache).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from avatar_rt.engines.backend import TensorSpec
from avatar_rt.engines.cache import EngineKey, write_plan
from avatar_rt.engines.manifest import EngineError
from avatar_rt.engines.parity import OutputParity, parity
from avatar_rt.engines.profiles import profile_shapes
from avatar_rt.engines.record import Feeds, tile_batch

PRECISIONS = ("fp16", "fp16-mixed", "fp32")
# Layer types pinned to FP32 in fp16-mixed: their FP16 error grows with the data (sums, exponentials).
SENSITIVE_LAYERS = ("REDUCE", "SOFTMAX", "NORMALIZATION", "UNARY", "SCATTER", "CUMULATIVE")
WORKSPACE_BYTES = 2 << 30


@dataclass
class Built:
    name: str
    precision: str
    seconds: float
    parity: list[OutputParity]
    tried: list[str]  # "fp16: velocity max 0.03 > 0.01" for each precision that failed


def build_plan(trt, onnx_path: Path, inputs: list[TensorSpec], *, precision: str, max_batch: int,
               timing_cache: bytes, logger) -> tuple[bytes, bytes]:
    """(serialized plan, updated timing cache) for one model at one precision."""
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.is_shape_tensor:  # its values would need profile ranges of their own (set_shape_input)
            raise EngineError(f"{onnx_path.name}: input {tensor.name!r} sets a shape inside the graph (a TensorRT "
                              "shape tensor); export it as data, or give its values a profile")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision in ("fp16", "fp16-mixed"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "fp16-mixed":
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        sensitive = {getattr(trt.LayerType, t) for t in SENSITIVE_LAYERS if hasattr(trt.LayerType, t)}
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type in sensitive:
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    if layer.get_output_type(j) in (trt.float32, trt.float16):
                        layer.set_output_type(j, trt.float32)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_shapes(inputs, max_batch=max_batch, model=onnx_path.name).items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT failed to build {onnx_path} at {precision} (see its log above)")
    return bytes(plan), bytes(cache.serialize())


def build_model(name: str, onnx_path: Path, key: EngineKey, feeds: list[Feeds], *, max_batch: int) -> Built:
    """Build, check and cache one model's plan at the cheapest precision that holds parity."""
    from avatar_rt.engines.ort_backend import CPU  # noqa: PLC0415
    from avatar_rt.engines.tensorrt_backend import import_tensorrt  # noqa: PLC0415
    from avatar_rt.engines.trt_runner import TrtRunner  # noqa: PLC0415

    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    reference = CPU.open(onnx_path, name)
    if not feeds:
        raise EngineError(f"no recorded inputs for {name}: the parity check has nothing to run")
    checks = list(feeds)
    wide = [f for f in (tile_batch(x, reference.inputs, max_batch) for x in feeds) if f is not None]
    checks += wide[:2]  # the top of the profile too: a batch the engine was not checked at is not shipped
    tried = []
    for precision in PRECISIONS:
        start = time.monotonic()
        timing = key.timing_cache.read_bytes() if key.timing_cache.is_file() else b""
        plan, timing = build_plan(trt, onnx_path, reference.inputs, precision=precision, max_batch=max_batch,
                                  timing_cache=timing, logger=logger)
        key.folder.mkdir(parents=True, exist_ok=True)
        key.timing_cache.write_bytes(timing)
        seconds = time.monotonic() - start
        runner = TrtRunner(plan, reference.inputs, reference.outputs, reference.metadata, what=name)
        result = parity(runner, reference, checks)
        runner.close()
        if all(p.ok for p in result):
            write_plan(key, plan, {
                "name": name, "onnx": str(onnx_path), "onnx_sha256": key.onnx_sha256, "gpu": key.gpu.name,
                "compute_capability": key.gpu.compute_capability, "tensorrt": key.tensorrt_version,
                "precision": precision, "max_batch": max_batch, "build_seconds": round(seconds, 1),
                "profile": {k: [list(s) for s in v] for k, v in
                            profile_shapes(reference.inputs, max_batch=max_batch, model=name).items()},
                "parity": [p.line() for p in result], "rejected": tried,
                "built_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())})
            return Built(name, precision, seconds, result, tried)
        failing = [p.line() for p in result if not p.ok]
        more = f"; and {len(failing) - 2} more" if len(failing) > 2 else ""
        tried.append(f"{precision}: " + "; ".join(failing[:2]) + more)
    raise EngineError(f"{name}: no precision holds parity with ONNX Runtime on the CPU ({' | '.join(tried)})")
