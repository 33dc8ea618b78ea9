"""cs330.runtime.keep_freed_memory: large tensors reuse freed memory instead of faulting in new pages."""

import json
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys, torch
from cs330.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
x = torch.ones(25_000_000)          # 100 MB: above glibc's mmap threshold
(x * 2).sum()                        # a first 100 MB temporary, freed again
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
(x * 2).sum()                        # the same size again: reused memory or fresh pages?
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "faults": faults}))
"""


def run(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_keep_freed_memory_avoids_page_faults_on_reuse():
    default, keep = run("default"), run("keep")
    assert keep["applied"] is True
    pages = 100e6 / 4096
    assert default["faults"] > 0.5 * pages, default  # glibc as is: a fresh mapping, one fault per page
    assert keep["faults"] < 0.05 * pages, keep  # kept heap memory: the pages are already there
