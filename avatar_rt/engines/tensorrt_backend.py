"""Native TensorRT: plans built by `avatar-rt engines build`, run through the `tensorrt` Python API.

`available()` and the cache look-up are plain Python and tested on any machine; the runner itself
(avatar_rt/engines/trt_runner.py) needs a GPU and is exercised by scripts/gpu_check.sh. The `tensorrt` and
`cuda-python` wheels come with the `gpu` extra.
"""

from __future__ import annotations

import functools
from pathlib import Path

from avatar_rt.engines.backend import BackendUnavailable, Runner
from avatar_rt.engines.cache import EngineKey, read_note
from avatar_rt.engines.gpu import Gpu, detect
from avatar_rt.engines.manifest import EngineError, sha256


def import_tensorrt():
    """The tensorrt module, or BackendUnavailable saying why not."""
    try:
        import tensorrt  # noqa: PLC0415
    except ImportError as exc:
        raise BackendUnavailable(f"tensorrt is not importable ({exc}; install the gpu extra)") from exc
    return tensorrt


def import_cudart():
    """CUDA runtime bindings from cuda-python (12.6+ moved them to cuda.bindings)."""
    try:
        from cuda.bindings import runtime as cudart  # noqa: PLC0415
    except ImportError:
        try:
            from cuda import cudart  # noqa: PLC0415
        except ImportError as exc:
            raise BackendUnavailable(f"cuda-python is not importable ({exc}; install the gpu extra)") from exc
    return cudart


def require_gpu() -> Gpu:
    found = detect()
    if isinstance(found, str):
        raise BackendUnavailable(f"no NVIDIA GPU: {found}")
    return found


def engine_key(onnx_path: Path) -> EngineKey:
    """The cache key of `onnx_path` on this machine (needs a GPU and tensorrt)."""
    gpu = require_gpu()
    return EngineKey(gpu, import_tensorrt().__version__, _sha256(Path(onnx_path)))


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    return sha256(Path(path))


def _sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_mtime_ns, st.st_size)


class TensorrtBackend:
    name = "tensorrt"

    def available(self) -> str | None:
        try:
            # The GPU first: on a machine without one that is the reason worth reading.
            require_gpu()
            import_tensorrt()
            import_cudart()
        except BackendUnavailable as exc:
            return str(exc)
        return None

    def open(self, path: Path, what: str, *, threads: int = 1) -> Runner:
        reason = self.available()
        if reason:
            raise BackendUnavailable(f"backend tensorrt: {reason}")
        if not Path(path).is_file():
            raise EngineError(f"cannot load the {what} {path}: no such file")
        key = engine_key(path)
        note = read_note(key)
        if note is None:
            raise EngineError(f"no TensorRT engine for the {what} {path} (sha256 {key.onnx_sha256[:12]}) on "
                              f"{key.gpu.name} with TensorRT {key.tensorrt_version} in {key.folder}: build it with "
                              "`avatar-rt engines build`")
        from avatar_rt.engines.ort_backend import CPU  # noqa: PLC0415
        from avatar_rt.engines.trt_runner import TrtRunner  # noqa: PLC0415

        # The ONNX file's declared inputs, outputs and metadata: the plan keeps names and shapes but not the
        # exporters' metadata, which the stages read.
        described = CPU.open(Path(path), what)
        return TrtRunner(key.plan.read_bytes(), described.inputs, described.outputs, described.metadata,
                         what=what)


TENSORRT = TensorrtBackend()
