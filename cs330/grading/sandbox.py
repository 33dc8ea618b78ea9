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

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 32, 4096, 16384
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


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
        limit = _vm_size() + (memory_mb << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if isolated:
        libc = ctypes.CDLL(None, use_errno=True)
        # The runner already made "/" read-only in this mount namespace, with ``keep`` on writable
        # mounts of their own; these handles re-attach them once their parents are covered.
        handles = {k: os.open(k, os.O_PATH) for k in keep}
        for path in hide:
            if not Path(path).is_dir():
                continue
            inner = [k for k in keep if Path(k).is_relative_to(path)]
            _mount(libc, "none", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size=64k,mode={'711' if inner else '000'}")
            for k in inner:
                os.makedirs(k, mode=0o711, exist_ok=True)
                _mount(libc, f"/proc/self/fd/{handles[k]}", k, None, MS_BIND | MS_REC, None)
            _mount(libc, "none", path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        for fd in handles.values():
            os.close(fd)
        _drop_capabilities(libc)
    for path in delete:
        shutil.rmtree(path, ignore_errors=True)
    import linecache

    linecache.clearcache()


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) << 10
    return 0


def _mount(libc, source, target, fstype, flags, data) -> None:
    enc = lambda s: None if s is None else str(s).encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sandbox: mount {target} failed: {os.strerror(err)}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc) -> None:
    """Drop every capability for good: from the bounding set, then from this process."""
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability: ignored
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "sandbox: PR_SET_NO_NEW_PRIVS failed")
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "sandbox: capset failed")
