#!/usr/bin/env bash
# The GPU path, proven in one go on a machine with an NVIDIA GPU (about 5-10 minutes, most of it the install):
#   1. installs the gpu extra into .venv-gpu (onnxruntime-gpu instead of onnxruntime, tensorrt, cuda-python);
#   2. `avatar-rt engines build --max-batch 16`: a TensorRT engine per shipped ONNX model, FP16 where it holds
#      parity with ONNX Runtime on the CPU (printed per output), cached by GPU, TensorRT version and ONNX sha256;
#   3. the GPU-only tests (native TensorRT and CUDA-provider parity against the CPU);
#   4. benchmarks/gpu_models.py: per-model latency at batch 1/4/16 on tensorrt, cuda and cpu, parity, and
#      sessions per GPU from the per-stage costs (JSON in gpu_check.json).
# Without a GPU it stops at once with status 2. Environment: PYTHON_BIN (3.11/3.12), MAX_BATCH (16).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  why="nvidia-smi not found"
  command -v nvidia-smi >/dev/null 2>&1 && why="nvidia-smi finds no GPU"
  echo "gpu_check: no NVIDIA GPU on this machine ($why); run it where one is. Here the models run on ONNX" \
       "Runtime's CPU backend, which scripts/test.sh covers." >&2
  exit 2
fi
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader
started=$SECONDS
step() { log "[$((SECONDS - started)) s] $*"; }

step "installing the gpu extra into .venv-gpu"
[ -x .venv-gpu/bin/python ] || "$PYTHON_BIN" -m venv .venv-gpu
py=.venv-gpu/bin/python
timeout 420 $py -m pip install -q --disable-pip-version-check -e ".[gpu,dev]"
# The base dependency onnxruntime and onnxruntime-gpu both install the module `onnxruntime`; whichever wheel
# was unpacked last wins, so keep only the GPU one.
if $py -m pip show -q onnxruntime >/dev/null 2>&1; then
  ort_gpu=$($py -m pip show onnxruntime-gpu | awk '/^Version:/ {print $2}')
  $py -m pip uninstall -q -y onnxruntime
  $py -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "onnxruntime-gpu==$ort_gpu"
fi
$py - <<'EOF'
import onnxruntime as ort, tensorrt as trt
print(f"onnxruntime {ort.__version__} providers {ort.get_available_providers()}; tensorrt {trt.__version__}")
from avatar_rt import engines
engines.use("auto")  # logs the backend auto picks and why
EOF

step "building TensorRT engines"
timeout 600 $py -m avatar_rt engines build --max-batch "${MAX_BATCH:-16}" --no-progress

step "GPU-only tests"
timeout 300 $py -m pytest -q -ra -p no:cacheprovider tests/test_engine_backends.py

step "latency at batch 1/4/16 and sessions per GPU"
timeout 300 $py benchmarks/gpu_models.py --batches 1,4,16 --json gpu_check.json
step "done"
