"""Run-time speed settings: ``keep_freed_memory()`` for training on a CPU; ``compiled()`` for a step.

``keep_freed_memory()``: glibc's ``malloc`` hands every request above its mmap threshold (at most
32 MB) to the kernel as a fresh mapping and unmaps it again on ``free``. A meta-batch's activations
are such requests (Conv4's first block on 16 tasks x 80 images: 16 x 80 x 64 x 28 x 28 floats, 257 MB
per tensor), so every forward and backward pass maps new memory and pays a page fault, and the
kernel's zeroing, for each 4 KB page it touches: most of an element-wise op's time on such a tensor
can go to page faults (measured: bench/README.md, "Timings of one machine").
Telling glibc to serve large requests from its heap and to keep freed memory lets later passes
reuse the same pages. The reuse is partial: PyTorch asks for 64-byte-aligned blocks
(``posix_memalign``), for which glibc needs a free block slightly larger than the request, so a freed
block of exactly the same size often does not fit and the heap grows instead (glibc 2.36: in a loop of
identical 100 MB temporaries, between 1 and 4 of 5 iterations still faulted all their pages). What it
buys on real workloads is measured per meta-iteration by ``bench/bench_maml.py`` (``--malloc``; its
figures are in bench/README.md). The price: a higher peak (freed blocks that do
not fit stay in the heap), and resident memory does not shrink after it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def keep_freed_memory() -> bool:
    """Make glibc serve large allocations from its heap and keep freed memory for reuse.

    Call it once, early (later allocations are affected; earlier mappings are not). Returns True when
    applied, False where there is no glibc (macOS, Windows, musl): a no-op there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0)  # no mmap per allocation: large blocks come from the heap
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # keep freed heap top (up to 2 GB) instead of returning it
    ok &= mallopt(_M_TOP_PAD, 64 << 20)  # grow the heap in 64 MB steps
    return bool(ok)


def compiled(fn, device):
    """``torch.compile(fn)`` for a training step's loss function, in the mode that suits ``device``.

    On CUDA ``mode="reduce-overhead"``: the step's kernels are recorded once as CUDA graphs and replayed,
    which removes the per-kernel launch cost that dominates small meta-learning steps (hundreds of tiny
    kernels per task). Elsewhere inductor's default mode, which fuses element-wise chains (norms,
    ReLU, the inner SGD update) into one pass over memory. The first call compiles (about a minute,
    more on a slow CPU); a call with new shapes or flags compiles again. Works through ``torch.func``
    (``vmap``, ``grad``) and second-order gradients (checked in tests/test_hw2_train.py).
    """
    import torch

    return torch.compile(fn, mode="reduce-overhead" if torch.device(device).type == "cuda" else None)
