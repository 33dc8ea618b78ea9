"""Limits and isolation for the process that runs student code.

The grader (cs330.grading.runner) starts the test process; once the tests are collected and the
reference is loaded, and before any student code runs, that process calls :func:`enter`:

* resource limits: address space (what it has now + ``memory_mb``), file size, no core dumps;
* when the runner started it in fresh mount/PID/network namespaces (as root, via ``unshare``):
  the whole file system becomes read-only; ``/tmp`` (where the grader keeps tests, reference,
  results and every workspace), the homework sources and the submissions are covered by empty,
  unreadable mounts, with only this process's own workspace and temp folder put back, writable;
  every capability is dropped, so none of this can be undone; the grader's own processes are
  invisible (PID namespace) and there is no network;
* otherwise (not root, or no namespaces on this machine) the per-run copies of the tests and the
  reference are deleted from disk, which keeps honest mistakes out but not a determined attacker;
  the grader says which mode it used.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import sys
from pathlib import Path

from cs330.grading.jail import MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT, drop_capabilities, limit_memory, mount


def modules_from(folder: Path) -> list[str]:
    """Names of the imported modules whose files lie in ``folder``."""
    folder = folder.resolve()
    out = []
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if isinstance(file, str) and os.path.isabs(file) and Path(file).resolve().is_relative_to(folder):
            out.append(name)
    return sorted(out)


def enter(memory_mb: int | None = None, file_mb: int | None = 1024, hide=(), keep=(), delete=(), isolated=False) -> None:
    """Apply the limits and isolation described in the module docstring to this process.

    ``hide``: folders covered by empty read-only mounts; ``keep``: folders inside them that stay
    reachable (this process's own workspace), re-attached through file descriptors opened first.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if file_mb:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
    if memory_mb:
        limit_memory(memory_mb)
    if isolated:
        libc = ctypes.CDLL(None, use_errno=True)
        # The runner already made "/" read-only in this mount namespace, with ``keep`` on writable
        # mounts of their own; these handles re-attach them once their parents are covered.
        handles = {k: os.open(k, os.O_PATH) for k in keep}
        for path in hide:
            if not Path(path).is_dir():
                continue
            inner = [k for k in keep if Path(k).is_relative_to(path)]
            mount(libc, "none", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size=64k,mode={'711' if inner else '000'}")
            for k in inner:
                os.makedirs(k, mode=0o711, exist_ok=True)
                mount(libc, f"/proc/self/fd/{handles[k]}", k, None, MS_BIND | MS_REC, None)
            mount(libc, "none", path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        for fd in handles.values():
            os.close(fd)
        drop_capabilities(libc)
    for path in delete:
        shutil.rmtree(path, ignore_errors=True)
    import linecache

    linecache.clearcache()
