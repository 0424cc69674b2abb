"""The shipped ONNX models (engines/manifest.json, hash-checked paths) and the backends that run them.

`manifest` holds the model files and their integrity checks; `backend` the `Backend`/`Runner` interface;
`ort_backend` ONNX Runtime (CPU, CUDA, TensorRT providers); `tensorrt_backend` + `trt_runner` native TensorRT;
`select` the `--backend` choice; `build` the `avatar-rt engines build` compiler; `profiles` its shape profiles.
Everything that was importable from the old module `avatar_rt.engines` still is.
"""

from avatar_rt.engines.backend import Backend, BackendUnavailable, Runner, TensorSpec, input_names
from avatar_rt.engines.manifest import (ENGINES_DIR, MANIFEST_NAME, EngineError, engine_entry, engine_path,
                                        load_manifest, sha256)
from avatar_rt.engines.ort_backend import CPU, one_thread_session
from avatar_rt.engines.select import BACKEND_CHOICES, choose, current, open_model, use

__all__ = [
    "BACKEND_CHOICES", "CPU", "ENGINES_DIR", "MANIFEST_NAME", "Backend", "BackendUnavailable", "EngineError",
    "Runner", "TensorSpec", "choose", "current", "engine_entry", "engine_path", "input_names", "load_manifest",
    "one_thread_session", "open_model", "sha256", "use",
]
