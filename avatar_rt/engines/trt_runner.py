"""A deserialised TensorRT plan behind the `Runner` interface (GPU only; scripts/gpu_check.sh exercises it).

Written against the TensorRT 10 Python API's name-based tensors (the binding indices of TensorRT 8 are gone):
`ICudaEngine.num_io_tensors` / `get_tensor_name` / `get_tensor_mode` / `get_tensor_dtype`, then per call
`IExecutionContext.set_input_shape`, `set_tensor_address` for every I/O tensor and `execute_async_v3(stream)`;
see https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/ExecutionContext.html
and the 8.x→10.x migration notes,
https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-8x-to-10x-python-api-patterns.html.
Device memory and the stream come from cuda-python's runtime bindings (cudaMalloc, cudaMemcpyAsync).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import numpy as np

from avatar_rt.engines.backend import TensorSpec
from avatar_rt.engines.manifest import EngineError
from avatar_rt.engines.tensorrt_backend import import_cudart, import_tensorrt


class TrtRunner:
    """One engine, one execution context, one CUDA stream; `run` holds a lock, so threads take turns (the
    cross-session batcher, not threads, is how several sessions share a GPU model)."""

    backend = "tensorrt"

    def __init__(self, plan: bytes, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 metadata: dict[str, str], *, what: str = "model"):
        trt = import_tensorrt()
        self._cudart = import_cudart()
        self.inputs, self.outputs, self.metadata, self.what = inputs, outputs, metadata, what
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineError(f"TensorRT could not deserialise the engine of the {what} (built by another "
                              "TensorRT or for another GPU?): rebuild it with `avatar-rt engines build`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._in = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._out = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtype = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self._device: dict[str, tuple[int, int]] = {}  # name -> (pointer, bytes), grown when a call needs more
        self._lock = threading.Lock()
        self.stream = self._call("cudaStreamCreate")

    def _call(self, fn: str, *args):
        result = getattr(self._cudart, fn)(*args)
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            raise EngineError(f"CUDA {fn} failed for the {self.what}: {err}")
        return result[1] if isinstance(result, tuple) and len(result) > 1 else None

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._device.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self._call("cudaFree", ptr)
            ptr, size = int(self._call("cudaMalloc", max(nbytes, 256))), max(nbytes, 256)
            self._device[name] = (ptr, size)
        return ptr

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        wanted = list(outputs) if outputs is not None else list(self._out)
        missing = [n for n in self._in if n not in feeds]
        if missing:
            raise ValueError(f"the {self.what} needs inputs {missing}")
        h2d = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            held = []  # host arrays must outlive the async copies
            for name in self._in:
                host = np.ascontiguousarray(feeds[name], dtype=self._dtype[name])
                held.append(host)
                if not self.context.set_input_shape(name, host.shape):
                    raise ValueError(f"the {self.what}'s input {name} {host.shape} is outside the engine's "
                                     "optimisation profile (rebuild with a larger --max-batch?)")
                ptr = self._buffer(name, host.nbytes)
                self._call("cudaMemcpyAsync", ptr, host.ctypes.data, host.nbytes, h2d, self.stream)
                self.context.set_tensor_address(name, ptr)
            results = {}
            for name in self._out:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise EngineError(f"the {self.what}'s output {name} has a data-dependent shape {shape}")
                results[name] = np.empty(shape, self._dtype[name])
                self.context.set_tensor_address(name, self._buffer(name, results[name].nbytes))
            if not self.context.execute_async_v3(int(self.stream)):  # cuda-python handles convert with int()
                raise EngineError(f"TensorRT failed to run the {self.what}")
            for name in wanted:
                host = results[name]
                self._call("cudaMemcpyAsync", host.ctypes.data, self._device[name][0], host.nbytes, d2h,
                           self.stream)
            self._call("cudaStreamSynchronize", self.stream)
        return {n: results[n] for n in wanted}

    def close(self) -> None:
        for ptr, _ in self._device.values():
            self._cudart.cudaFree(ptr)
        self._device.clear()
        if self.stream is not None:
            self._cudart.cudaStreamDestroy(self.stream)
            self.stream = None

    def __del__(self):  # best effort: a process that exits frees the device anyway
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
