"""cs330.runtime.keep_freed_memory: large tensors come from glibc's heap instead of fresh kernel mappings.

(Whether that saves page faults in a given loop depends on how the heap fragments: see the module
docstring; its speed is measured in bench/bench_maml.py, not here.)"""

import json
import subprocess
import sys

import pytest

CHILD = r"""
import json, sys, torch
from cs330.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
x = torch.ones(25_000_000)          # 100 MB: above glibc's mmap threshold
address = x.data_ptr()
heap = None
with open("/proc/self/maps") as f:
    for line in f:
        if line.rstrip().endswith("[heap]"):
            lo, hi = (int(a, 16) for a in line.split()[0].split("-"))
            heap = [lo, hi]
print(json.dumps({"applied": applied, "in_heap": heap is not None and heap[0] <= address < heap[1]}))
"""


def run(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_keep_freed_memory_serves_large_tensors_from_the_heap():
    default, keep = run("default"), run("keep")
    assert keep["applied"] is True
    assert default["in_heap"] is False  # glibc as is: a 100 MB block is a fresh mapping of its own
    assert keep["in_heap"] is True  # kept: it comes from the (reusable) heap
