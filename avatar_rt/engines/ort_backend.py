"""ONNX Runtime backends: the CPU provider (default), and the CUDA and TensorRT execution providers.

The GPU providers come with the `onnxruntime-gpu` wheel (the `gpu` extra); a plain `onnxruntime` has only the CPU
one, which `available()` reports by name. Each GPU backend lists the CPU provider last, so an op a GPU provider
lacks still runs (ONNX Runtime assigns it to the CPU).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar_rt.engines.backend import BackendUnavailable, TensorSpec
from avatar_rt.engines.manifest import EngineError

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
           "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}
ORT_TRT_CACHE_ENV = "AVATAR_RT_ORT_TRT_CACHE"


def _spec(arg) -> TensorSpec:
    return TensorSpec(arg.name, tuple(arg.shape), np.dtype(_DTYPES.get(arg.type, np.float32)))


def _ort_trt_cache() -> str:
    """Where ONNX Runtime's TensorRT provider keeps the engines and timing cache it builds on first use."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "avatar_rt" / "ort_trt"
    path = Path(os.environ.get(ORT_TRT_CACHE_ENV, default))
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


MAX_BATCH_ENV = "AVATAR_RT_MAX_BATCH"


def _ort_trt_profiles(path: Path) -> dict[str, str]:
    """Explicit min/opt/max shapes (avatar_rt/engines/profiles.py) for the TensorRT provider: without them it
    rebuilds an engine, for seconds, whenever a call's shape leaves the range it has seen (stage A's frames per
    call vary with network jitter). Empty when a dimension has no range (the provider then finds its own)."""
    from avatar_rt.engines.profiles import profile_shapes  # noqa: PLC0415

    inputs = CPU.open(path, path.name).inputs
    try:
        shapes = profile_shapes(inputs, max_batch=int(os.environ.get(MAX_BATCH_ENV, "16")), model=path.name)
    except (EngineError, ValueError):
        return {}
    dynamic = {n: s for n, s in shapes.items() if s[0] != s[2]}
    if not dynamic:
        return {}
    text = [",".join(f"{n}:{'x'.join(map(str, s[k]))}" for n, s in dynamic.items()) for k in range(3)]
    return {"trt_profile_min_shapes": text[0], "trt_profile_opt_shapes": text[1], "trt_profile_max_shapes": text[2]}


_preloaded: list[bool] = []


def _preload(ort) -> None:
    if not _preloaded:
        _preloaded.append(True)
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001  (a missing library shows up as the provider failing, with its reason)
            pass


class OrtRunner:
    """`Runner` over an onnxruntime.InferenceSession (its `run` is thread-safe)."""

    def __init__(self, session, backend: str):
        self.session = session
        self.backend = backend
        self.inputs = [_spec(a) for a in session.get_inputs()]
        self.outputs = [_spec(a) for a in session.get_outputs()]
        self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        self._all = [o.name for o in self.outputs]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        names = list(outputs) if outputs is not None else self._all
        return dict(zip(names, self.session.run(names, dict(feeds))))


@dataclass(frozen=True)
class OrtBackend:
    """One ONNX Runtime execution provider (plus the CPU for whatever it cannot run)."""

    name: str
    provider: str  # the execution provider this backend exists for

    def available(self) -> str | None:
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError as exc:  # a runtime dependency; a broken install says so here
            return f"onnxruntime is not importable ({exc})"
        if self.provider != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu ≥ 1.21 loads CUDA and cuDNN from the nvidia-* wheels of its [cuda,cudnn] extras
            # (no system CUDA needed); without them the provider still loads from the system's libraries.
            _preload(ort)
        have = ort.get_available_providers()
        if self.provider not in have:
            hint = "" if self.provider == "CPUExecutionProvider" else " (install the gpu extra: onnxruntime-gpu)"
            return f"onnxruntime {ort.__version__} has no {self.provider}{hint}"
        return None

    def providers(self, path: Path | None = None) -> list:
        if self.provider == "TensorrtExecutionProvider":
            cache = _ort_trt_cache()
            # FP32: this provider builds its engines itself, with no parity check (`avatar-rt engines build`
            # and the `tensorrt` backend are where FP16 is used, and only where it holds parity).
            options = {"trt_fp16_enable": False, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                       "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}
            if path is not None:
                options.update(_ort_trt_profiles(path))
            return [(self.provider, options), "CUDAExecutionProvider", "CPUExecutionProvider"]
        if self.provider == "CPUExecutionProvider":
            return [self.provider]
        return [self.provider, "CPUExecutionProvider"]

    def open(self, path: Path, what: str, *, threads: int = 1) -> OrtRunner:
        import onnxruntime as ort  # noqa: PLC0415  (not every user of the manifest needs ORT)

        reason = self.available()
        if reason:
            raise BackendUnavailable(f"backend {self.name}: {reason}")
        # One thread by default: the small streaming models run once per frame beside the renderer, where more
        # threads only contend.
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), so, providers=self.providers(path))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"cannot load the {what} {path}: {exc}") from exc
        if self.provider not in session.get_providers():
            # ONNX Runtime falls back to the CPU when a GPU provider fails to start (missing CUDA/cuDNN/TensorRT
            # libraries): asked for a GPU, that is an error, not a silently slow server.
            raise BackendUnavailable(f"backend {self.name}: onnxruntime could not start {self.provider} for the "
                                     f"{what} (its libraries are missing or do not match; onnxruntime's log says "
                                     f"which); it got {session.get_providers()}")
        return OrtRunner(session, self.name)


CPU = OrtBackend("cpu", "CPUExecutionProvider")
CUDA = OrtBackend("cuda", "CUDAExecutionProvider")
ORT_TENSORRT = OrtBackend("ort-tensorrt", "TensorrtExecutionProvider")


def one_thread_session(path: Path, what: str):
    """The raw onnxruntime.InferenceSession on the CPU, one thread (kept for callers that predate `Runner`)."""
    return CPU.open(path, what).session
