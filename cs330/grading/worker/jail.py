"""The student worker's world: a private root file system, an unprivileged user, and limits.

The worker (cs330.grading.worker.serve) calls :func:`enter` first thing, before it imports anything a
student wrote. What it gets depends on the mode the grader picked (:func:`available_mode`):

``namespaces`` (the grader is root and Linux namespaces work: CI, most autograder machines)
    The worker starts in fresh mount, PID, network, IPC and UTS namespaces (``unshare``). It builds
    a new root on an empty tmpfs holding only what running Python needs, read-only: the system
    folders, Python and its packages, the ``cs330`` package (not the repository around it), the
    data root, the probe modules (``/probes``); plus, writable and size-capped: its own copy of the
    submission (``/home/student/<folder>``), a private ``/tmp`` and ``/dev/shm``. ``/proc`` is its
    own (it sees only its own processes) with ``/proc/sys`` read-only, ``/sys`` is read-only, and
    there is no network. It then pivots into that root, drops every capability and becomes an
    unprivileged user of its own (a uid per grading job), so nothing of this can be undone.
``user-namespace`` (not root, but unprivileged user namespaces work: a TA's laptop)
    The same private root, built inside a user namespace; the worker stays the (mapped) user that
    started the grader, without capabilities.
``setuid`` (root, no namespaces: a container without CAP_SYS_ADMIN)
    No private root: the worker runs as an unprivileged uid in its own workspace (owned by that
    uid), with the limits below. It cannot write anywhere else, and the grader's own folders are
    unreadable to it; world-readable files on the machine stay readable.
``process`` (none of the above)
    A separate process with the limits below, as the same user: verdicts are still made outside it.

Limits in every mode: address space (memory), file size, process count, open files, no core dumps.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import shutil
import signal
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

MODES = ("namespaces", "user-namespace", "setuid", "process")
HOME = "/home/student"
PROBES = "/probes"
DEVICES = ("null", "zero", "full", "random", "urandom")

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    8,
    32,
    4096,
    16384,
    1 << 18,
)
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE = 24, 38, 4
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
NAMESPACES = ["--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "--kill-child", "--propagation", "private"]


@lru_cache(maxsize=1)
def available_mode() -> str:
    """The strongest mode this machine allows (``$CS330_SANDBOX`` forces one, for tests)."""
    forced = os.environ.get("CS330_SANDBOX")
    if forced:
        if forced not in MODES:
            raise ValueError(f"CS330_SANDBOX={forced!r}: must be one of {MODES}")
        return forced
    if shutil.which("unshare"):
        if os.geteuid() == 0 and _works(["unshare", *NAMESPACES, "true"]):
            return "namespaces"
        if os.geteuid() != 0 and _works(["unshare", "--user", "--map-root-user", *NAMESPACES, "true"]):
            return "user-namespace"
    return "setuid" if os.geteuid() == 0 else "process"


def describe(mode: str) -> str:
    """A mode in words, for results.json."""
    outside = "verdicts made outside the student's process"
    return {
        "namespaces": f"namespaces: private root file system, unprivileged user, no network; {outside}",
        "user-namespace": f"user namespace: private root file system, no capabilities, no network; {outside}",
        "setuid": "setuid only (no namespaces on this machine): unprivileged user, limits, no private file system "
                  f"or network isolation; {outside}",
        "process": f"separate process only (not root, no namespaces): same user, limits; {outside}",
    }[mode]


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def read_only_paths() -> list[str]:
    """What the worker needs to see, read-only, at the same paths: the system, Python, its
    packages, the ``cs330`` package (never the repository around it), the data root and cache."""
    import site
    import sys

    import cs330
    from cs330.data.root import cache_root, data_root

    paths = ["/usr", "/etc", sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
             str(Path(cs330.__file__).resolve().parent), str(data_root()), str(cache_root())]
    out: list[str] = []
    for p in paths:
        for q in (os.path.abspath(p), os.path.realpath(p)):
            if os.path.exists(q) and q not in out:
                out.append(q)
    # never a folder that holds the grader's own (the temp folder with every job, the repository)
    from cs330.data.root import repo_root

    private = [Path(tempfile.gettempdir()).resolve(), *([repo_root().resolve()] if repo_root() else [])]
    for p in out:
        for secret in private:
            if secret.is_relative_to(p):
                raise ValueError(f"{p} would show the student's process {secret} (it holds the grader's files): "
                                 "keep Python, the data root ($CS330_DATA) and the cache ($CS330_CACHE) out of it")
    # a folder inside another one is covered by it (and mounting it again would hide nothing)
    return [p for p in out if not any(p != q and Path(p).is_relative_to(q) for q in out)]


def closed_to_others(paths: list[str]) -> list[Path]:
    """The folders on the way to ``paths`` (or among them) that another user may not pass through (no
    ``o+x``: a 0700 home or ``mktemp -d`` folder, say), in the order of ``paths``, each path's outermost
    first. In ``setuid`` mode the worker is another user: it could not start Python from behind such a folder."""
    closed: list[Path] = []
    for p in paths:
        path = Path(p).resolve()
        for folder in [*reversed(path.parents), path]:
            if folder not in closed and folder.is_dir() and not folder.stat().st_mode & 0o001:
                closed.append(folder)
    return closed


def describe_exit(code: int | None) -> str:
    """A process's exit status in words (a negative code, or 128 + n under `unshare --fork`, is signal n)."""
    if code is None:
        return "still running"
    signum = -code if code < 0 else code - 128 if code > 128 else None
    if signum:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        why = {
            "SIGSEGV": "a segmentation fault",
            "SIGKILL": "killed (out of memory or stopped)",
            "SIGXFSZ": "wrote past the file-size limit",
            "SIGABRT": "aborted",
        }.get(name, name)
        return f"{why}, {name}"
    return f"exit code {code}"


def kill_user(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a child that becomes ``uid`` and signals all it may):
    in ``setuid`` mode, what a submission left running outside any PID namespace."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def command(mode: str) -> list[str]:
    """What goes in front of the worker's command line for ``mode``."""
    if mode == "namespaces":
        return ["unshare", *NAMESPACES]
    if mode == "user-namespace":
        return ["unshare", "--user", "--map-root-user", *NAMESPACES]
    return []


# --------------------------------------------------------------------------------------------------
# Entering the jail (runs in the worker, before any student code)


def enter(cfg: dict) -> Path:
    """Set up the worker's world as ``cfg`` says (see the module docstring); returns its workspace.

    ``cfg``: mode, uid, root (an empty folder to build the new root on), workspace (the prepared
    submission copy), folder (its name), binds (paths mounted read-only at the same place),
    probes (folder of probe modules), workspace_mb, tmp_mb, memory_mb, file_mb, nproc.
    """
    mode = cfg["mode"]
    if mode in ("namespaces", "user-namespace"):
        workspace = _private_root(cfg)
    else:
        workspace = Path(cfg["workspace"])
        os.chdir(workspace)
    _limits(cfg)
    if mode == "namespaces" or mode == "setuid":
        _become(cfg["uid"])
    elif mode == "user-namespace":
        drop_capabilities()
    return workspace


def _private_root(cfg: dict) -> Path:
    libc = _libc()
    root = Path(cfg["root"])
    mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):  # merged-/usr links, kept as links
        if os.path.islink(f"/{top}"):
            os.symlink(os.readlink(f"/{top}"), root / top)
    # the private, writable folders first: what is bound below may lie inside them (a virtual
    # environment or a checkout under /tmp) and must stay visible, read-only, on top
    _tmpfs(libc, root / "tmp", cfg["tmp_mb"], "1777")
    home = root / HOME.lstrip("/")
    _tmpfs(libc, home, cfg["workspace_mb"], "755")
    workspace = home / cfg["folder"]
    shutil.copytree(cfg["workspace"], workspace, symlinks=True)
    if cfg["mode"] == "namespaces":
        for folder, _, files in os.walk(home):
            os.chown(folder, cfg["uid"], cfg["uid"])
            for name in files:
                os.chown(os.path.join(folder, name), cfg["uid"], cfg["uid"], follow_symlinks=False)
    for path in cfg["binds"]:
        _bind(libc, Path(path), root, readonly=True)
    if cfg.get("probes"):
        _bind(libc, Path(cfg["probes"]), root, readonly=True, at=PROBES)
    # /proc: this PID namespace's own, with the kernel's settings read-only
    (root / "proc").mkdir()
    mount(libc, "proc", root / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for sub in ("sys", "sysrq-trigger", "irq", "bus", "fs"):
        target = root / "proc" / sub
        if target.exists():
            mount(libc, target, target, None, MS_BIND | MS_REC)
            mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _bind(libc, Path("/sys"), root, readonly=True)
    # /dev: a few device nodes, and a private /dev/shm
    (root / "dev").mkdir()
    mount(libc, "tmpfs", root / "dev", "tmpfs", MS_NOSUID, "size=64k,mode=755")
    for name in [*DEVICES, *(p.name for p in Path("/dev").glob("nvidia*") if not p.is_dir())]:
        if Path("/dev", name).exists():
            _bind(libc, Path("/dev", name), root, readonly=False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, root / "dev" / name)
    _tmpfs(libc, root / "dev" / "shm", cfg["tmp_mb"], "1777")
    _pivot(libc, root)
    os.chdir(f"{HOME}/{cfg['folder']}")
    try:
        import socket

        socket.sethostname("sandbox")
    except (OSError, AttributeError):
        pass
    return Path(f"{HOME}/{cfg['folder']}")


def _bind(libc, source: Path, root: Path, readonly: bool, at: str | None = None) -> None:
    """Mount ``source`` at the same path (or ``at``) under ``root``."""
    if not source.exists():
        return
    target = root / (at or str(source)).lstrip("/")
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    mount(libc, source, target, None, MS_BIND | MS_REC)
    if readonly:
        mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _tmpfs(libc, target: Path, size_mb: int, mode: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    mount(libc, "tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(size_mb)}m,mode={mode}")


def _pivot(libc, root: Path) -> None:
    """Make ``root`` the root and detach the old one entirely (chroot where pivot_root is unknown)."""
    os.chdir(root)
    if SYS_PIVOT_ROOT is not None and libc.syscall(SYS_PIVOT_ROOT, b".", b".") == 0:
        if libc.umount2(b".", MNT_DETACH) != 0:
            raise OSError(ctypes.get_errno(), "jail: could not detach the old root")
    else:
        os.chroot(".")
    os.chdir("/")


def _limits(cfg: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_mb"] << 20,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    if cfg["mode"] in ("namespaces", "setuid"):  # counted per user: only meaningful for a uid of its own
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["nproc"],) * 2)


def limit_memory(memory_mb: int) -> None:
    """Cap the address space at what this process has now plus ``memory_mb`` (after imports)."""
    limit = _vm_size() + (memory_mb << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) << 10
    return 0


def _become(uid: int) -> None:
    """Become ``uid`` for good: no groups, no capabilities (bounding set too), no new privileges."""
    libc = _libc()
    _drop_bounding_set(libc)  # while still allowed to (CAP_SETPCAP)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _no_new_privileges(libc)
    if os.getuid() != uid or os.geteuid() != uid or _effective_caps() != 0:
        raise OSError(f"jail: still privileged after becoming uid {uid}")


def drop_capabilities(libc=None) -> None:
    """Drop every capability for good, staying the same user: the bounding set, then this process's."""
    libc = libc or _libc()
    _drop_bounding_set(libc)
    _no_new_privileges(libc)
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "jail: capset failed")


def _drop_bounding_set(libc) -> None:
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability: ignored


def _no_new_privileges(libc) -> None:
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "jail: PR_SET_NO_NEW_PRIVS failed")


def _effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def mount(libc, source, target, fstype, flags, data=None) -> None:
    """mount(2), raising OSError with the target's name."""
    enc = lambda s: None if s is None else str(s).encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"jail: mount {target} failed: {os.strerror(err)}")
