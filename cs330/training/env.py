"""Run setup: seed, device, threads, determinism; and the environment a results file records.

``setup`` is called once at the top of a run script, before the model is built, so that the
initial weights depend on the seed alone.
"""

from __future__ import annotations

import os
import platform
import random
import sys

import torch


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): CUDA when available, else the CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def setup(seed: int = 0, device: str | torch.device | None = "auto", threads: int | None = None,
          deterministic: bool = False) -> torch.device:
    """Seed every global RNG, set the CPU thread count and the determinism flag; return the device.

    Seeds python ``random``, numpy's global RNG (when numpy is imported) and torch (CPU and every
    CUDA device) with ``seed``. ``threads``: intra-op threads (None keeps torch's default, one per
    core). ``deterministic``: ``torch.use_deterministic_algorithms(True, warn_only=True)`` and no cuDNN autotuning,
    so that a rerun on the same machine gives the same numbers (slower on a GPU; on CUDA it also
    needs ``CUBLAS_WORKSPACE_CONFIG``, set here when absent).
    """
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if threads is not None:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)  # an op without a deterministic version warns
    if deterministic:
        torch.backends.cudnn.benchmark = False  # autotuning may pick a different kernel each run
    return pick_device(device)


def environment(device: str | torch.device, data_fingerprint: str | None = None) -> dict:
    """``{"versions": {...}, "device": ..., "data_fingerprint": ...}`` for a results file's ``env``."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    if "numpy" in sys.modules:
        versions["numpy"] = sys.modules["numpy"].__version__
    return {"versions": versions, "device": f"{device} ({name}, {torch.get_num_threads()} threads)",
            "data_fingerprint": data_fingerprint}
