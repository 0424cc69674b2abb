"""Is there an NVIDIA GPU, and which: the facts the TensorRT engine cache is keyed by.

Read from `nvidia-smi` (it ships with the driver, so it is there wherever a GPU is usable, and it needs no CUDA
Python package): the first GPU's name and compute capability. Without a GPU the answer is a reason, used
verbatim by `avatar-rt engines build`, scripts/gpu_check.sh and the GPU-only tests' skip messages.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

NVIDIA_SMI_ENV = "AVATAR_RT_NVIDIA_SMI"  # another nvidia-smi (a path), e.g. where the driver lives elsewhere


@dataclass(frozen=True)
class Gpu:
    name: str  # e.g. "NVIDIA H200"
    compute_capability: str  # e.g. "9.0"

    @property
    def slug(self) -> str:
        """A file-name-safe key: 'nvidia-h200-sm90'."""
        name = "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")
        while "--" in name:
            name = name.replace("--", "-")
        return f"{name}-sm{self.compute_capability.replace('.', '')}"


@functools.lru_cache(maxsize=1)
def detect() -> Gpu | str:
    """The first NVIDIA GPU, or the reason there is none (one line)."""
    smi = os.environ.get(NVIDIA_SMI_ENV) or shutil.which("nvidia-smi")
    if not smi:
        driver = "the NVIDIA driver is not loaded" if not os.path.exists("/proc/driver/nvidia") else \
            "the NVIDIA driver is loaded but nvidia-smi is missing"
        return f"nvidia-smi not found on PATH and {driver}"
    try:
        done = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{smi} failed: {exc}"
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    if done.returncode != 0 or not lines:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return f"{smi} found no GPU (exit {done.returncode}: {detail[0] if detail else 'no output'})"
    name, _, cc = lines[0].rpartition(",")
    return Gpu(name.strip(), cc.strip())


def no_gpu_reason() -> str | None:
    """None when an NVIDIA GPU is visible, else why not (for skip reasons and error messages)."""
    found = detect()
    return found if isinstance(found, str) else None
